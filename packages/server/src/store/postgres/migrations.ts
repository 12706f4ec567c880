/**
 * PostgreSQL migrations: numbered and forward-only like SQLite's, but their own numbers. The
 * first is the whole schema as SQLite's migrations 1–12 leave it, in PostgreSQL's types: times
 * and byte counts bigint (ms), binary data bytea, JSON as text (hashed and compared byte for
 * byte), names in the "C" collation (ordered byte-wise, as SQLite orders them), and flags as 0/1 integers so eligibility.ts's one SQL rule serves both stores.
 * Never edit one that has shipped; add the next number.
 */
export interface PgMigration {
  version: number;
  name: string;
  sql: string;
}

export const pgMigrations: readonly PgMigration[] = [
  {
    version: 1,
    name: 'schema as of SQLite migration 12 (teams, reviews, webhooks, runbooks, people)',
    sql: `
CREATE TABLE orgs (
  id TEXT PRIMARY KEY, name TEXT COLLATE "C" NOT NULL UNIQUE, created_at BIGINT NOT NULL, output_bytes BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE principals (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id),
  kind TEXT NOT NULL CHECK (kind IN ('service','person')), name TEXT COLLATE "C" NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','operator','viewer')),
  instance_admin INTEGER NOT NULL DEFAULT 0, created_by TEXT, created_at BIGINT NOT NULL, removed_at BIGINT
);
CREATE UNIQUE INDEX principals_live_name ON principals(org_id, name) WHERE removed_at IS NULL;
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT COLLATE "C" NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','operator','viewer')),
  token_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, revoked_at BIGINT,
  principal_id TEXT REFERENCES principals(id), expires_at BIGINT, last_used_at BIGINT
);
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens(org_id, name) WHERE revoked_at IS NULL;
CREATE INDEX api_tokens_principal ON api_tokens(principal_id);
CREATE TABLE targets (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT COLLATE "C" NOT NULL, type TEXT NOT NULL,
  agent_mode TEXT NOT NULL CHECK (agent_mode IN ('hosted','self-hosted')),
  created_at BIGINT NOT NULL, deleted_at BIGINT,
  network TEXT NOT NULL DEFAULT 'none' CHECK (network IN ('none','host')),
  limits TEXT NOT NULL DEFAULT '{}',
  redact TEXT NOT NULL DEFAULT 'secrets' CHECK (redact IN ('secrets','all','none')),
  public_key TEXT, key_id TEXT, key_rotation_requested_at BIGINT,
  settings TEXT NOT NULL DEFAULT '{}', review TEXT
);
CREATE UNIQUE INDEX targets_live_name ON targets(org_id, name) WHERE deleted_at IS NULL;
CREATE TABLE join_tokens (
  id TEXT PRIMARY KEY, org_id TEXT REFERENCES orgs(id), secret_hash TEXT NOT NULL UNIQUE,
  hosted INTEGER NOT NULL, target_ids TEXT NOT NULL, created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT, used_by TEXT
);
CREATE TABLE agents (
  id TEXT PRIMARY KEY, org_id TEXT REFERENCES orgs(id), name TEXT COLLATE "C" NOT NULL, hostname TEXT NOT NULL,
  version TEXT NOT NULL, platform TEXT NOT NULL, hosted INTEGER NOT NULL, concurrency INTEGER NOT NULL,
  token_hash TEXT NOT NULL UNIQUE, registered_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL, revoked_at BIGINT,
  pruned_at BIGINT
);
CREATE TABLE agent_targets (
  agent_id TEXT NOT NULL REFERENCES agents(id), target_id TEXT NOT NULL REFERENCES targets(id),
  PRIMARY KEY (agent_id, target_id)
);
CREATE TABLE tasks (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), target_id TEXT NOT NULL REFERENCES targets(id),
  script TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER, signal TEXT, reason TEXT,
  agent_id TEXT REFERENCES agents(id), created_by TEXT NOT NULL, created_at BIGINT NOT NULL,
  claimed_at BIGINT, started_at BIGINT, finished_at BIGINT, timeout_seconds DOUBLE PRECISION NOT NULL,
  lease_expires_at BIGINT, cancel_requested_at BIGINT, output_bytes BIGINT NOT NULL DEFAULT 0,
  stored_bytes BIGINT NOT NULL DEFAULT 0, redact_state TEXT,
  stdin BYTEA, args TEXT NOT NULL DEFAULT '[]', env TEXT NOT NULL DEFAULT '{}',
  output_expired_at BIGINT,
  review TEXT, review_expires_at BIGINT, created_by_principal TEXT, runbook TEXT
);
CREATE INDEX tasks_queue ON tasks(status, target_id, created_at);
CREATE INDEX tasks_org_created ON tasks(org_id, created_at);
CREATE INDEX tasks_agent ON tasks(agent_id, status);
CREATE INDEX tasks_output_expiry ON tasks(finished_at) WHERE output_expired_at IS NULL AND stored_bytes > 0;
CREATE INDEX tasks_review_expiry ON tasks(review_expires_at) WHERE status = 'pending_review';
CREATE INDEX tasks_running_lease ON tasks(lease_expires_at) WHERE status = 'running';
-- Output chunks keyed by task and stored byte offset: a read seeks to its offset by this key.
CREATE TABLE task_output (
  task_id TEXT NOT NULL REFERENCES tasks(id), start_offset BIGINT NOT NULL, end_offset BIGINT NOT NULL,
  stream INTEGER NOT NULL, time DOUBLE PRECISION NOT NULL, data BYTEA NOT NULL,
  PRIMARY KEY (task_id, start_offset)
);
CREATE TABLE audit_log (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, org_id TEXT, at BIGINT NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, subject TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE INDEX audit_log_org ON audit_log(org_id, seq);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TABLE secrets (
  target_id TEXT NOT NULL REFERENCES targets(id), name TEXT COLLATE "C" NOT NULL, org_id TEXT NOT NULL REFERENCES orgs(id),
  kid TEXT NOT NULL, sealed TEXT NOT NULL, bytes INTEGER NOT NULL, set_by TEXT NOT NULL, set_at BIGINT NOT NULL,
  PRIMARY KEY (target_id, name)
);
CREATE TABLE agent_identity_keys (
  agent_id TEXT PRIMARY KEY REFERENCES agents(id), public_key TEXT NOT NULL, key_id TEXT NOT NULL, set_at BIGINT NOT NULL
);
CREATE TABLE target_key_holders (
  target_id TEXT NOT NULL REFERENCES targets(id), agent_id TEXT NOT NULL REFERENCES agents(id), key_id TEXT NOT NULL, since BIGINT NOT NULL,
  PRIMARY KEY (target_id, agent_id)
);
CREATE INDEX target_key_holders_agent ON target_key_holders(agent_id);
CREATE TABLE key_handovers (
  target_id TEXT NOT NULL REFERENCES targets(id), agent_id TEXT NOT NULL REFERENCES agents(id), key_id TEXT NOT NULL,
  from_agent_id TEXT NOT NULL REFERENCES agents(id), wrapped TEXT NOT NULL, created_at BIGINT NOT NULL,
  PRIMARY KEY (target_id, agent_id, key_id)
);
CREATE INDEX key_handovers_agent ON key_handovers(agent_id);
CREATE TABLE groups (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX groups_name ON groups(org_id, name);
CREATE TABLE group_members (
  group_id TEXT NOT NULL REFERENCES groups(id), principal_id TEXT NOT NULL REFERENCES principals(id),
  PRIMARY KEY (group_id, principal_id)
);
CREATE INDEX group_members_principal ON group_members(principal_id);
CREATE TABLE target_grants (
  target_id TEXT NOT NULL REFERENCES targets(id), group_id TEXT NOT NULL REFERENCES groups(id),
  role TEXT NOT NULL CHECK (role IN ('operator','viewer')), created_at BIGINT NOT NULL,
  PRIMARY KEY (target_id, group_id)
);
CREATE INDEX target_grants_group ON target_grants(group_id);
CREATE TABLE task_reviews (
  task_id TEXT NOT NULL REFERENCES tasks(id), principal_id TEXT NOT NULL, actor TEXT NOT NULL,
  decision TEXT NOT NULL CHECK (decision IN ('approve','reject')), comment TEXT,
  binding TEXT NOT NULL, at BIGINT NOT NULL,
  PRIMARY KEY (task_id, principal_id, decision)
);
CREATE TABLE webhooks (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), url TEXT NOT NULL, events TEXT NOT NULL,
  format TEXT NOT NULL CHECK (format IN ('json','slack')), secret TEXT NOT NULL,
  created_by TEXT NOT NULL, created_at BIGINT NOT NULL, deleted_at BIGINT
);
CREATE INDEX webhooks_org ON webhooks(org_id) WHERE deleted_at IS NULL;
CREATE TABLE webhook_deliveries (
  id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL REFERENCES webhooks(id), event TEXT NOT NULL, task_id TEXT NOT NULL,
  body TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('pending','delivered','failed')),
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT, created_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, created_at);
CREATE TABLE webhook_attempts (
  delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id), n INTEGER NOT NULL, at BIGINT NOT NULL,
  http_status INTEGER, error TEXT, duration_ms INTEGER NOT NULL, PRIMARY KEY (delivery_id, n)
);
CREATE TABLE runbook_sources (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT COLLATE "C" NOT NULL, git TEXT NOT NULL,
  ref TEXT NOT NULL, path TEXT NOT NULL, commit_sha TEXT, synced_at BIGINT, last_error TEXT,
  created_by TEXT NOT NULL, created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX runbook_sources_name ON runbook_sources(org_id, name);
CREATE TABLE runbooks (
  org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT COLLATE "C" NOT NULL, source_id TEXT NOT NULL REFERENCES runbook_sources(id),
  file TEXT NOT NULL, commit_sha TEXT NOT NULL, meta TEXT NOT NULL, script TEXT NOT NULL,
  PRIMARY KEY (org_id, name)
);
CREATE TABLE passwords (
  principal_id TEXT PRIMARY KEY REFERENCES principals(id), hash TEXT NOT NULL, updated_at BIGINT NOT NULL
);
CREATE TABLE invitations (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), email TEXT COLLATE "C" NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','operator','viewer')), token_hash TEXT NOT NULL UNIQUE,
  created_by TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT
);
CREATE INDEX invitations_email ON invitations(org_id, email) WHERE used_at IS NULL;
CREATE TABLE org_sso (
  org_id TEXT PRIMARY KEY REFERENCES orgs(id), issuer TEXT NOT NULL, client_id TEXT NOT NULL,
  client_secret TEXT NOT NULL, domains TEXT NOT NULL, groups_claim TEXT, updated_at BIGINT NOT NULL
);
CREATE TABLE sso_logins (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), state_hash TEXT NOT NULL UNIQUE,
  code_verifier TEXT NOT NULL, nonce TEXT NOT NULL, loopback_port INTEGER NOT NULL, cli_challenge TEXT NOT NULL,
  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT,
  principal_id TEXT REFERENCES principals(id), exchange_hash TEXT UNIQUE, exchanged_at BIGINT
);
CREATE TABLE sso_devices (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), handle_hash TEXT NOT NULL UNIQUE,
  device_code TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT
);
`,
  },
  {
    version: 2,
    name: 'output digest state (SQLite migration 15)',
    sql: `
-- The digest state of the raw output received (protocol's OutputDigest), written with each
-- append, so that any replica can check an upload's digest and the final status; NULL for a
-- task that was running when the server was upgraded (checked by length only). Output itself
-- stays in task_output chunk rows: SQLite 15's move to files has no counterpart here.
ALTER TABLE tasks ADD COLUMN output_digest TEXT;
`,
  },
  {
    version: 3,
    name: "target network policy 'public' (SQLite migration 16)",
    sql: `
-- 'public': public endpoints only. PostgreSQL widens the CHECK in place (the column's own
-- constraint, named by PostgreSQL's rule table_column_check in migration 1).
ALTER TABLE targets DROP CONSTRAINT targets_network_check;
ALTER TABLE targets ADD CONSTRAINT targets_network_check CHECK (network IN ('none','host','public'));
`,
  },
];
