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
    version: 4,
    name: 'agent identity keys, target key holders, wrapped key hand-overs, key rotation',
    sql: `
-- The public half of each agent's identity key; target keys are wrapped to it for the agent.
CREATE TABLE agent_identity_keys (
  agent_id TEXT PRIMARY KEY REFERENCES agents(id), public_key TEXT NOT NULL, key_id TEXT NOT NULL, set_at INTEGER NOT NULL
);
-- Which agent holds which key of a target (it holds the target's key when key_id is the target's).
CREATE TABLE target_key_holders (
  target_id TEXT NOT NULL REFERENCES targets(id), agent_id TEXT NOT NULL REFERENCES agents(id), key_id TEXT NOT NULL, since INTEGER NOT NULL,
  PRIMARY KEY (target_id, agent_id)
);
CREATE INDEX target_key_holders_agent ON target_key_holders(agent_id);
-- Target private keys wrapped by a holder for one agent: the server relays them and cannot open them.
CREATE TABLE key_handovers (
  target_id TEXT NOT NULL REFERENCES targets(id), agent_id TEXT NOT NULL REFERENCES agents(id), key_id TEXT NOT NULL,
  from_agent_id TEXT NOT NULL REFERENCES agents(id), wrapped TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (target_id, agent_id, key_id)
);
CREATE INDEX key_handovers_agent ON key_handovers(agent_id);
ALTER TABLE targets ADD COLUMN key_rotation_requested_at INTEGER;
`,
  },
  {
    version: 5,
    name: 'target settings, pruned agents',
    sql: `
ALTER TABLE targets ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
-- A pruned agent leaves the list but keeps its row, so the tasks it ran still name it.
ALTER TABLE agents ADD COLUMN pruned_at INTEGER;
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
  {
    version: 7,
    name: 'output retention and per-organization output usage',
    sql: `
-- When retention removed the task's stored output (the task row, its status and audit stay).
ALTER TABLE tasks ADD COLUMN output_expired_at INTEGER;
-- Stored output bytes per organization, kept with every write and removal (the quota reads it).
ALTER TABLE orgs ADD COLUMN output_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE orgs SET output_bytes = (SELECT COALESCE(SUM(stored_bytes), 0) FROM tasks WHERE tasks.org_id = orgs.id);
CREATE INDEX tasks_output_expiry ON tasks(finished_at) WHERE output_expired_at IS NULL AND stored_bytes > 0;
`,
  },
  {
    version: 10,
    name: 'teams: principals, token expiry and last use, groups, target grants, instance administrators',
    sql: `
-- Who acts: a service account now, a person later (kind 'person', name = e-mail). One role per
-- principal in its organization; instance administrators may also create organizations and add
-- agents to the shared hosted pool.
CREATE TABLE principals (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id),
  kind TEXT NOT NULL CHECK (kind IN ('service','person')), name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','operator','viewer')),
  instance_admin INTEGER NOT NULL DEFAULT 0, created_by TEXT, created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX principals_name ON principals(org_id, name);
-- Tokens act as their principal (whose role counts; api_tokens.role is what it was made with).
ALTER TABLE api_tokens ADD COLUMN principal_id TEXT REFERENCES principals(id);
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
-- Every token made before this becomes a service account of its own name; the first start's
-- admin token (default organization, named admin) is the instance administrator.
INSERT OR IGNORE INTO principals (id, org_id, kind, name, role, instance_admin, created_by, created_at)
  SELECT 'p_' || substr(id, 3), org_id, 'service', name, role, CASE WHEN org_id = 'o_default' AND name = 'admin' THEN 1 ELSE 0 END, NULL, created_at
  FROM api_tokens ORDER BY created_at;
UPDATE api_tokens SET principal_id = (SELECT p.id FROM principals p WHERE p.org_id = api_tokens.org_id AND p.name = api_tokens.name);
-- Live token names become unique per organization (tokens are revoked by name). Older servers
-- made a second token named admin when the admin-token file was removed: the later ones of a
-- name get their id appended (they keep acting as the same service account).
UPDATE api_tokens SET name = name || '-' || substr(id, 3)
  WHERE revoked_at IS NULL AND EXISTS (SELECT 1 FROM api_tokens o
    WHERE o.org_id = api_tokens.org_id AND o.name = api_tokens.name AND o.revoked_at IS NULL AND o.id < api_tokens.id);
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens(org_id, name) WHERE revoked_at IS NULL;
CREATE INDEX api_tokens_principal ON api_tokens(principal_id);
CREATE TABLE groups (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL, created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX groups_name ON groups(org_id, name);
CREATE TABLE group_members (
  group_id TEXT NOT NULL REFERENCES groups(id), principal_id TEXT NOT NULL REFERENCES principals(id),
  PRIMARY KEY (group_id, principal_id)
);
CREATE INDEX group_members_principal ON group_members(principal_id);
CREATE TABLE target_grants (
  target_id TEXT NOT NULL REFERENCES targets(id), group_id TEXT NOT NULL REFERENCES groups(id),
  role TEXT NOT NULL CHECK (role IN ('operator','viewer')), created_at INTEGER NOT NULL,
  PRIMARY KEY (target_id, group_id)
);
CREATE INDEX target_grants_group ON target_grants(group_id);
`,
  },
  {
    version: 11,
    name: 'reviews (a rule per target, pending tasks, decisions), webhooks (receivers, durable deliveries, attempts), runbooks',
    sql: `
-- A target's review rule as JSON (rule, group, approvals, expiry); NULL: no review.
ALTER TABLE targets ADD COLUMN review TEXT;
-- The rule a task was created under and the binding (sha256) its approvals sign off.
ALTER TABLE tasks ADD COLUMN review TEXT;
ALTER TABLE tasks ADD COLUMN review_expires_at INTEGER;
-- Who made the task, whatever token it used: its author may not approve it.
ALTER TABLE tasks ADD COLUMN created_by_principal TEXT;
CREATE TABLE task_reviews (
  task_id TEXT NOT NULL REFERENCES tasks(id), principal_id TEXT NOT NULL, actor TEXT NOT NULL,
  decision TEXT NOT NULL CHECK (decision IN ('approve','reject')), comment TEXT,
  binding TEXT NOT NULL, at INTEGER NOT NULL,
  -- One person counts once.
  PRIMARY KEY (task_id, principal_id, decision)
);
CREATE INDEX tasks_review_expiry ON tasks(review_expires_at) WHERE status = 'pending_review';
-- Webhooks: an organization's receivers of task events. The signing secret is the server's to
-- use (it signs every delivery), so it is kept here, like the server's other own material.
CREATE TABLE webhooks (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), url TEXT NOT NULL, events TEXT NOT NULL,
  format TEXT NOT NULL CHECK (format IN ('json','slack')), secret TEXT NOT NULL,
  created_by TEXT NOT NULL, created_at INTEGER NOT NULL, deleted_at INTEGER
);
CREATE INDEX webhooks_org ON webhooks(org_id) WHERE deleted_at IS NULL;
-- The durable delivery queue: one row per event and webhook, its body fixed when it is queued.
CREATE TABLE webhook_deliveries (
  id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL REFERENCES webhooks(id), event TEXT NOT NULL, task_id TEXT NOT NULL,
  body TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('pending','delivered','failed')),
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER, created_at INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, created_at);
-- Runbooks: Git repositories of parameterized scripts, and the runbooks of their last good sync.
CREATE TABLE runbook_sources (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL, git TEXT NOT NULL,
  ref TEXT NOT NULL, path TEXT NOT NULL, commit_sha TEXT, synced_at INTEGER, last_error TEXT,
  created_by TEXT NOT NULL, created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX runbook_sources_name ON runbook_sources(org_id, name);
CREATE TABLE runbooks (
  org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL, source_id TEXT NOT NULL REFERENCES runbook_sources(id),
  file TEXT NOT NULL, commit_sha TEXT NOT NULL, meta TEXT NOT NULL, script TEXT NOT NULL,
  PRIMARY KEY (org_id, name)
);
-- The runbook a task ran: source, file, commit and parameters (JSON); NULL for a script of its own.
ALTER TABLE tasks ADD COLUMN runbook TEXT;
-- Every attempt, as the receiver answered it.
CREATE TABLE webhook_attempts (
  delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id), n INTEGER NOT NULL, at INTEGER NOT NULL,
  http_status INTEGER, error TEXT, duration_ms INTEGER NOT NULL, PRIMARY KEY (delivery_id, n)
);
`,
  },
  {
    version: 12,
    name: 'people: local accounts (Argon2id passwords), invitations, removed principals',
    sql: `
-- A removed person keeps its row (audit entries and tokens point at it) but frees its e-mail
-- for a new invitation: names are unique among principals not removed.
ALTER TABLE principals ADD COLUMN removed_at INTEGER;
DROP INDEX principals_name;
CREATE UNIQUE INDEX principals_live_name ON principals(org_id, name) WHERE removed_at IS NULL;
-- A person's password, as an Argon2id PHC string (salt and parameters included).
CREATE TABLE passwords (
  principal_id TEXT PRIMARY KEY REFERENCES principals(id), hash TEXT NOT NULL, updated_at INTEGER NOT NULL
);
-- One-time invitations: the secret is stored as its SHA-256 only; used_at is set once (CAS).
CREATE TABLE invitations (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), email TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','operator','viewer')), token_hash TEXT NOT NULL UNIQUE,
  created_by TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER
);
CREATE INDEX invitations_email ON invitations(org_id, email) WHERE used_at IS NULL;
-- OpenID Connect single sign-on, one provider per organization. The client secret is the
-- server's own credential towards the provider (it has to present it), so it is stored here.
CREATE TABLE org_sso (
  org_id TEXT PRIMARY KEY REFERENCES orgs(id), issuer TEXT NOT NULL, client_id TEXT NOT NULL,
  client_secret TEXT NOT NULL, domains TEXT NOT NULL, groups_claim TEXT, updated_at INTEGER NOT NULL
);
-- Sign-ins through the provider in progress: looked up by the hash of their state, used once;
-- then, once the provider answered, redeemed once by the CLI with its exchange code.
CREATE TABLE sso_logins (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), state_hash TEXT NOT NULL UNIQUE,
  code_verifier TEXT NOT NULL, nonce TEXT NOT NULL, loopback_port INTEGER NOT NULL, cli_challenge TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER,
  principal_id TEXT REFERENCES principals(id), exchange_hash TEXT UNIQUE, exchanged_at INTEGER
);
-- Sign-ins without a browser on this machine (OAuth 2.0 device authorization, RFC 8628): the
-- provider's device code, polled for by the CLI with its handle (stored hashed).
CREATE TABLE sso_devices (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), handle_hash TEXT NOT NULL UNIQUE,
  device_code TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER
);
`,
  },
  {
    version: 15,
    name: 'task output in files',
    sql: `
-- Output bytes move out of rows into one append-only file per task (the data folder's output/);
-- SQLite keeps where each frame starts and ends. The store moves rows of task_output written
-- before this version into files when it opens (moveRowsToFiles), then task_output stays empty.
CREATE TABLE task_output_frames (
  task_id TEXT NOT NULL REFERENCES tasks(id), start_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL,
  stream INTEGER NOT NULL, time REAL NOT NULL,
  PRIMARY KEY (task_id, start_offset)
) WITHOUT ROWID;
-- The digest state of the raw output received (protocol's OutputDigest), so that any server can
-- check the final status; NULL for a task that was running when the server was upgraded.
ALTER TABLE tasks ADD COLUMN output_digest TEXT;
`,
  },
  {
    version: 16,
    name: "target network policy 'public'",
    sql: `
-- SQLite cannot widen a CHECK constraint: the column is replaced by one that allows 'public'
-- (public endpoints only) and renamed back. A column's own CHECK does not stop DROP COLUMN.
ALTER TABLE targets ADD COLUMN network_policy TEXT NOT NULL DEFAULT 'none' CHECK (network_policy IN ('none','host','public'));
UPDATE targets SET network_policy = network;
ALTER TABLE targets DROP COLUMN network;
ALTER TABLE targets RENAME COLUMN network_policy TO network;
`,
  },
];
