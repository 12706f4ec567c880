/**
 * The PostgreSQL section's machinery: a throwaway PostgreSQL 15 cluster on loopback (Debian's
 * binaries, run as the `postgres` user since initdb refuses root; the same recipe as
 * test/helpers/databases.ts, which .mjs cannot import), and `ferry server` replicas on one
 * database and one shared data folder. The measuring itself is run.mjs's, given these servers.
 *
 * The cluster keeps PostgreSQL's defaults (fsync, synchronous_commit, full_page_writes,
 * shared_buffers all as shipped): a figure taken with durability switched off would flatter the
 * store. Only what a throwaway cluster needs is set: its port, loopback only, its socket folder.
 */
import process from 'node:process';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Proc, cpuTicks, startServer, waitFor } from './harness.mjs';

const PG_BIN_DIRS = ['/usr/lib/postgresql/15/bin', '/usr/local/bin', '/usr/bin'];

function pgBin(name) {
  for (const dir of PG_BIN_DIRS) if (existsSync(join(dir, name))) return join(dir, name);
  throw new Error(`PostgreSQL's ${name} is not installed (apt-get install postgresql-15)`);
}

function idOf(user, flag) {
  return Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
}

/** A port the OS says is free right now (the replicas need theirs before they start, for --public-url). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * CPU ticks of the whole cluster: the postmaster with what it reaped (backends that ended) plus
 * its live children (backends, checkpointer, WAL writer…). The bench's CPU accounting sees only
 * the listed processes, and would put the backends, which do the work, under "unattributed".
 */
export function clusterCpuTicks(postmasterPid) {
  let total = cpuTicks(postmasterPid, { children: true });
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === postmasterPid) total += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return total;
}

/**
 * Starts PostgreSQL 15 in a fresh folder under the system temp folder (the bench folder is
 * 0700 root, which the `postgres` user cannot enter). The postmaster is a Cleanup process, so
 * it is stopped on success, failure and signals, and its folder removed with the others.
 * Returns `url(database)` and `createDatabase(name)`.
 */
export async function startPostgres(cleanup) {
  const dir = cleanup.dir(mkdtempSync(join(tmpdir(), 'ferry-bench-pg-')));
  chmodSync(dir, 0o755);
  const uid = idOf('postgres', '-u');
  const gid = idOf('postgres', '-g');
  const data = join(dir, 'data');
  const pwfile = join(dir, 'pw');
  const user = 'ferry';
  const password = 'bench-Pa55word';
  writeFileSync(pwfile, `${password}\n`);
  chownSync(dir, uid, gid);
  chownSync(pwfile, uid, gid);
  const asPostgres = { uid, gid, cwd: dir, stdio: 'pipe' };
  // --no-sync only skips initdb's own final fsync of the new folder; the running cluster keeps fsync on.
  execFileSync(pgBin('initdb'), ['-D', data, '-U', user, '--pwfile', pwfile, '-A', 'scram-sha-256', '--no-sync'], asPostgres);
  const port = await freePort();
  const child = spawn(pgBin('postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1'], {
    uid,
    gid,
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Its own kind: Cleanup stops agents first, then servers and this together; SIGTERM is a
  // "smart" shutdown that ends once the servers' pools have closed.
  const proc = cleanup.proc(new Proc(child, 'postgres', 'postgres'));
  const env = { ...process.env, PGPASSWORD: password };
  const psql = (database, sql) =>
    execFileSync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', database, '-v', 'ON_ERROR_STOP=1', '-c', sql], {
      env,
      stdio: 'pipe',
    });
  await waitFor(
    () => {
      if (!proc.alive) throw new Error(`postgres exited: ${proc.stderrTail}`);
      try {
        psql('postgres', 'SELECT 1');
        return true;
      } catch {
        return false;
      }
    },
    30_000,
    'PostgreSQL to accept connections',
  );
  const url = (database) => `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  const version = execFileSync(pgBin('postgres'), ['--version'], { encoding: 'utf8' }).trim();
  return {
    proc,
    pid: proc.pid,
    port,
    version,
    url,
    createDatabase(name) {
      psql('postgres', `CREATE DATABASE ${name}`);
      return url(name);
    },
    /** Fast shutdown (SIGINT): the bench has no use for sessions that are still open. Then its folder goes. */
    async stop() {
      await proc.stop('SIGINT');
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

/**
 * `n` `ferry server` replicas on one database URL and one data folder (as replicas mounting one
 * shared volume would), each on a port chosen beforehand so that every replica can be told all
 * URLs with `--public-url`, its own first: a join token made on any of them carries all of them.
 * They start one after another: the first one creates the data folder's CA and admin token, the
 * others find them there.
 */
export async function startReplicas(cleanup, root, databaseUrl, n) {
  const dataDir = join(root, 'pg-replicas');
  const ports = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  const urls = ports.map((p) => `https://127.0.0.1:${p}`);
  const servers = [];
  for (let i = 0; i < n; i++) {
    const publicUrl = [urls[i], ...urls.filter((_, j) => j !== i)].join(',');
    servers.push(
      await startServer(cleanup, root, {
        name: `pg-replica-${i}`,
        dataDir,
        listen: `127.0.0.1:${ports[i]}`,
        args: ['--public-url', publicUrl],
        env: { FERRY_DATABASE_URL: databaseUrl },
      }),
    );
  }
  return servers;
}
