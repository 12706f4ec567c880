/**
 * Numbered, forward-only migrations. Never edit one that has shipped; add the next number.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE orgs (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL
);
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','operator','viewer')),
  token_hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, revoked_at INTEGER
);
CREATE TABLE targets (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL, type TEXT NOT NULL,
  agent_mode TEXT NOT NULL CHECK (agent_mode IN ('hosted','self-hosted')),
  created_at INTEGER NOT NULL, deleted_at INTEGER
);
CREATE UNIQUE INDEX targets_live_name ON targets(org_id, name) WHERE deleted_at IS NULL;
CREATE TABLE join_tokens (
  id TEXT PRIMARY KEY, org_id TEXT REFERENCES orgs(id), secret_hash TEXT NOT NULL UNIQUE,
  hosted INTEGER NOT NULL, target_ids TEXT NOT NULL, created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER, used_by TEXT
);
CREATE TABLE agents (
  id TEXT PRIMARY KEY, org_id TEXT REFERENCES orgs(id), name TEXT NOT NULL, hostname TEXT NOT NULL,
  version TEXT NOT NULL, platform TEXT NOT NULL, hosted INTEGER NOT NULL, concurrency INTEGER NOT NULL,
  token_hash TEXT NOT NULL UNIQUE, registered_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, revoked_at INTEGER
);
CREATE TABLE agent_targets (
  agent_id TEXT NOT NULL REFERENCES agents(id), target_id TEXT NOT NULL REFERENCES targets(id),
  PRIMARY KEY (agent_id, target_id)
);
CREATE TABLE tasks (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), target_id TEXT NOT NULL REFERENCES targets(id),
  script TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER, signal TEXT, reason TEXT,
  agent_id TEXT REFERENCES agents(id), created_by TEXT NOT NULL, created_at INTEGER NOT NULL,
  claimed_at INTEGER, started_at INTEGER, finished_at INTEGER, timeout_seconds REAL NOT NULL,
  lease_expires_at INTEGER, cancel_requested_at INTEGER, output_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_queue ON tasks(status, target_id, created_at);
CREATE INDEX tasks_org_created ON tasks(org_id, created_at);
CREATE INDEX tasks_agent ON tasks(agent_id, status);
CREATE TABLE task_output (
  task_id TEXT NOT NULL REFERENCES tasks(id), start_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL,
  stream INTEGER NOT NULL, time REAL NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (task_id, start_offset)
) WITHOUT ROWID;
CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, org_id TEXT, at INTEGER NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, subject TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`,
  },
  {
    version: 2,
    name: 'target network policy and limits',
    sql: `
ALTER TABLE targets ADD COLUMN network TEXT NOT NULL DEFAULT 'none' CHECK (network IN ('none','host'));
ALTER TABLE targets ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
`,
  },
  {
    version: 3,
    name: 'sealing keys, sealed secrets, redaction',
    sql: `
ALTER TABLE targets ADD COLUMN redact TEXT NOT NULL DEFAULT 'secrets' CHECK (redact IN ('secrets','all','none'));
ALTER TABLE targets ADD COLUMN public_key TEXT;
ALTER TABLE targets ADD COLUMN key_id TEXT;
CREATE TABLE secrets (
  target_id TEXT NOT NULL REFERENCES targets(id), name TEXT NOT NULL, org_id TEXT NOT NULL REFERENCES orgs(id),
  kid TEXT NOT NULL, sealed TEXT NOT NULL, bytes INTEGER NOT NULL, set_by TEXT NOT NULL, set_at INTEGER NOT NULL,
  PRIMARY KEY (target_id, name)
);
-- Output offsets: output_bytes counts what the agent sent (its offsets, for idempotent uploads);
-- stored_bytes counts what was stored after redaction (the offsets readers use).
ALTER TABLE tasks ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN redact_state TEXT;
`,
  },
  {
    version: 6,
    name: "a task's stdin, arguments and plain environment",
    sql: `
ALTER TABLE tasks ADD COLUMN stdin BLOB;
ALTER TABLE tasks ADD COLUMN args TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN env TEXT NOT NULL DEFAULT '{}';
`,
  },
];
