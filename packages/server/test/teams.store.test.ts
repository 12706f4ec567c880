/**
 * The teams store: on SQLite, an existing database's tokens become service accounts when
 * migration 10 runs (the first start's admin token the instance administrator); on both
 * backends (helpers/stores.ts), grants through several groups give the best role.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { migrations } from '../src/store/sqlite/migrations.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { forEachStore } from './helpers/stores.js';

const dirs: string[] = [];
function dbFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-teams-store-'));
  dirs.push(dir);
  return join(dir, 'ferry.db');
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('teams store', () => {
  test("migration 10 makes each existing token a service account (tokens of one name share one); the default organization's admin token is the instance administrator", async () => {
    const file = dbFile();
    // A database as the previous version left it: every migration before 10 applied, two tokens.
    const old = new Database(file);
    old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    for (const m of migrations.filter((x) => x.version < 10)) {
      old.exec(m.sql);
      old.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, 0);
    }
    old.exec(`INSERT INTO orgs (id, name, created_at) VALUES ('o_default', 'default', 1), ('o_x', 'x', 2);
      INSERT INTO api_tokens (id, org_id, name, role, token_hash, created_at) VALUES
        ('k_admin', 'o_default', 'admin', 'admin', 'hash-admin', 1),
        ('k_admin2', 'o_default', 'admin', 'admin', 'hash-admin-2', 3),
        ('k_ci', 'o_x', 'ci', 'operator', 'hash-ci', 2);`);
    old.close();

    const store = new SqliteStore(file);
    try {
      const admin = await store.teams.findToken('hash-admin');
      assert.deepEqual(
        [admin?.principal.name, admin?.principal.kind, admin?.principal.role, admin?.principal.instanceAdmin, admin?.token.id],
        ['admin', 'service', 'admin', true, 'k_admin'],
      );
      // A second token of the same name (the admin-token file was removed once) keeps working as the same admin.
      const second = await store.teams.findToken('hash-admin-2');
      assert.deepEqual([second?.principal.id, second?.token.name], [admin?.principal.id, 'admin-admin2']);
      const ci = await store.teams.findToken('hash-ci');
      assert.deepEqual([ci?.principal.name, ci?.principal.orgId, ci?.principal.role, ci?.principal.instanceAdmin], ['ci', 'o_x', 'operator', false]);
    } finally {
      await store.close();
    }
  });
});

forEachStore('teams store', (backend) => {
  test('grants through several groups give the best role; names are unique per organization', async () => {
    const store = await backend.open();
    try {
      const org = await store.ensureOrg('default', 1);
      const p = {
        id: 'p_1',
        orgId: org.id,
        kind: 'service' as const,
        name: 'bot',
        role: 'operator' as const,
        instanceAdmin: false,
        createdBy: null,
        createdAt: 1,
      };
      assert.equal(await store.teams.createPrincipal(p), 'ok');
      assert.equal(await store.teams.createPrincipal({ ...p, id: 'p_2' }), 'exists');
      await store.createTarget({
        id: 'g_a',
        orgId: org.id,
        name: 'a',
        type: 'shell',
        agentMode: 'hosted',
        createdAt: 1,
        network: 'none',
        limits: {},
        redact: 'secrets',
        publicKeyPem: null,
        keyId: null,
        settings: {},
        review: null,
      });
      for (const [id, name] of [
        ['r_1', 'readers'],
        ['r_2', 'ops'],
      ] as const) {
        assert.equal(await store.teams.createGroup({ id, orgId: org.id, name, createdAt: 1 }), 'ok');
        assert.equal(await store.teams.addGroupMember(id, 'p_1'), true);
      }
      assert.equal(await store.teams.addGroupMember('r_1', 'p_1'), false, 'already a member');
      await store.teams.putGrant('g_a', 'r_1', 'viewer', 1);
      assert.deepEqual([...(await store.teams.grantsOf('p_1'))], [['g_a', 'viewer']]);
      await store.teams.putGrant('g_a', 'r_2', 'operator', 1);
      assert.deepEqual([...(await store.teams.grantsOf('p_1'))], [['g_a', 'operator']]);
      assert.equal(await store.teams.deleteGrant('g_a', 'r_2'), true);
      assert.equal(await store.teams.deleteGrant('g_a', 'r_2'), false);
      assert.deepEqual([...(await store.teams.grantsOf('p_1'))], [['g_a', 'viewer']]);

      const token = { id: 'k_1', orgId: org.id, principalId: 'p_1', name: 'bot', createdAt: 1, expiresAt: null, lastUsedAt: null, revokedAt: null };
      assert.equal(await store.teams.createToken(token, 'h1'), 'ok');
      assert.equal(await store.teams.createToken({ ...token, id: 'k_2' }, 'h2'), 'exists', 'a live token of that name exists');
      assert.equal(await store.teams.revokeToken(org.id, 'k_1', 5), true);
      assert.equal(await store.teams.createToken({ ...token, id: 'k_2' }, 'h2'), 'ok', 'a revoked token frees its name');
      assert.equal((await store.teams.findToken('h1'))?.token.revokedAt, 5, 'revoked tokens are found, and say so');
    } finally {
      await store.close();
    }
  });
});
