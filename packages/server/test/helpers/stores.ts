/**
 * One store contract, two backends: `forEachStore` runs the same tests on SQLite and on a real
 * PostgreSQL 15 (test/helpers/databases.ts starts one cluster per test file, on first use). Each
 * `open()` gives a fresh, empty store (a new SQLite file, a new PostgreSQL database); `open(name)`
 * opens that database again, to see what persisted. Stores still open when a file ends are closed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe } from 'node:test';
import pg from 'pg';
import Database from 'better-sqlite3';
import { startPostgres, type DbServer } from '../../../../test/helpers/databases.js';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/types.js';

type BackendKind = 'sqlite' | 'postgres';

export interface TestBackend {
  readonly kind: BackendKind;
  /** A fresh, empty store; with `name`, the database of that name (made on first use, opened again after). */
  open(name?: string): Promise<Store>;
  /** Runs SQL on database `name` behind the store's back (as someone with database access could). */
  exec(name: string, sql: string): Promise<void>;
  /** PostgreSQL only: the URL of database `name` (made on first use). */
  url(name: string): Promise<string>;
}

let cluster: Promise<DbServer> | undefined;
let scratch: string | undefined;
const opened: Store[] = [];
const made = new Set<string>();
let counter = 0;
let hooked = false;

function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'ferry-stores-'));
  return scratch;
}

async function pgServer(): Promise<DbServer> {
  cluster ??= startPostgres();
  return cluster;
}

async function pgUrl(name: string): Promise<string> {
  const db = await pgServer();
  const base = `postgres://${db.user}:${encodeURIComponent(db.password)}@${db.host}:${db.port}`;
  if (!made.has(name)) {
    const admin = new pg.Client({ connectionString: `${base}/postgres` });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    made.add(name);
  }
  return `${base}/${name}`;
}

const backends: Record<BackendKind, TestBackend> = {
  sqlite: {
    kind: 'sqlite',
    open: (name = `t${++counter}`) => {
      // Each database its own output folder: a store opening removes the files of tasks its
      // database does not know (OutputFiles.reconcile), which would be other databases' files.
      const store = new SqliteStore(join(scratchDir(), `${name}.db`), { outputDir: join(scratchDir(), `${name}.output`) });
      opened.push(store);
      return Promise.resolve(store);
    },
    // eslint-disable-next-line @typescript-eslint/require-await -- a failure rejects, as PostgreSQL's does
    exec: async (name, sql) => {
      const db = new Database(join(scratchDir(), `${name}.db`));
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
    },
    url: () => Promise.reject(new Error('url() is for PostgreSQL')),
  },
  postgres: {
    kind: 'postgres',
    open: async (name = `t${++counter}`) => {
      const store = await PostgresStore.open({ url: await pgUrl(name), poolSize: 4 });
      opened.push(store);
      return store;
    },
    exec: async (name, sql) => {
      const client = new pg.Client({ connectionString: await pgUrl(name) });
      await client.connect();
      try {
        await client.query(sql);
      } finally {
        await client.end();
      }
    },
    url: (name) => pgUrl(name),
  },
};

/** Closes what tests left open, stops the cluster and removes the scratch folder, after the file's last test. */
function hookCleanup(): void {
  if (hooked) return;
  hooked = true;
  after(async () => {
    for (const store of opened.splice(0)) await store.close().catch(() => undefined);
    if (cluster) await (await cluster).stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });
}

/** For PostgreSQL-only tests: databases on this file's cluster. Call at a file's top level. */
export function usePostgres(): { url(name: string): Promise<string> } {
  hookCleanup();
  return { url: pgUrl };
}

/** `describe(title [backend])` once per backend, with `body` given that backend. Call at a file's top level. */
export function forEachStore(title: string, body: (backend: TestBackend) => void): void {
  hookCleanup();
  for (const kind of ['sqlite', 'postgres'] as const) describe(`${title} [${kind}]`, () => body(backends[kind]));
}
