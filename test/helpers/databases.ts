/**
 * Throwaway database servers on loopback for runtime tests: PostgreSQL 15 from Debian's
 * binaries (run as the `postgres` user, since initdb refuses root) and MariaDB from Debian's
 * packages. Each gets a fresh data folder, a free port, a user with a password, and is
 * stopped and removed by `stop()`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './ferry.js';

export interface DbServer {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  stop(): Promise<void>;
}

function pgBin(name: string): string {
  for (const dir of ['/usr/lib/postgresql/15/bin', '/usr/local/bin', '/usr/bin']) if (existsSync(join(dir, name))) return join(dir, name);
  throw new Error(`PostgreSQL's ${name} is not installed (apt-get install postgresql-15)`);
}

function uidOf(user: string): { uid: number; gid: number } {
  return { uid: Number(execFileSync('id', ['-u', user], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', user], { encoding: 'utf8' })) };
}

/** `tls`: serve TLS with this certificate and key (PEM), for clients that verify it. */
export async function startPostgres(opts: { tls?: { certPem: string; keyPem: string } } = {}): Promise<DbServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-pg-'));
  chmodSync(dir, 0o755);
  const { uid, gid } = uidOf('postgres');
  const data = join(dir, 'data');
  const pwfile = join(dir, 'pw');
  const password = 'pg-test-Pa55word';
  writeFileSync(pwfile, `${password}\n`);
  chownSync(dir, uid, gid);
  chownSync(pwfile, uid, gid);
  const asPostgres = { uid, gid, cwd: dir, stdio: 'pipe' as const };
  execFileSync(pgBin('initdb'), ['-D', data, '-U', 'ferry', '--pwfile', pwfile, '-A', 'scram-sha-256', '--no-sync'], asPostgres);
  const port = await freePort();
  let tlsOptions = '';
  if (opts.tls) {
    // PostgreSQL wants its key readable by itself only.
    for (const [name, pem, mode] of [
      ['server.crt', opts.tls.certPem, 0o644],
      ['server.key', opts.tls.keyPem, 0o600],
    ] as const) {
      writeFileSync(join(dir, name), pem, { mode });
      chownSync(join(dir, name), uid, gid);
    }
    tlsOptions = ` -c ssl=on -c ssl_cert_file=${join(dir, 'server.crt')} -c ssl_key_file=${join(dir, 'server.key')}`;
  }
  execFileSync(
    pgBin('pg_ctl'),
    ['-D', data, '-w', '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off${tlsOptions}`, 'start'],
    asPostgres,
  );
  execFileSync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'ferry', '-d', 'postgres', '-c', 'CREATE DATABASE app'], {
    env: { ...process.env, PGPASSWORD: password },
    stdio: 'pipe',
  });
  return {
    host: '127.0.0.1',
    port,
    user: 'ferry',
    password,
    database: 'app',
    stop: () => {
      try {
        execFileSync(pgBin('pg_ctl'), ['-D', data, '-m', 'immediate', 'stop'], asPostgres);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      return Promise.resolve();
    },
  };
}

function mariaBin(...names: string[]): string {
  for (const n of names) for (const dir of ['/usr/sbin', '/usr/bin']) if (existsSync(join(dir, n))) return join(dir, n);
  throw new Error(`MariaDB (${names.join('/')}) is not installed (apt-get install mariadb-server)`);
}

export async function startMariaDb(): Promise<DbServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-maria-'));
  chmodSync(dir, 0o755);
  const { uid, gid } = uidOf('mysql');
  chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  const socket = join(dir, 'sock');
  execFileSync(
    mariaBin('mariadb-install-db', 'mysql_install_db'),
    ['--user=mysql', `--datadir=${data}`, '--skip-test-db', '--auth-root-authentication-method=socket'],
    { stdio: 'pipe' },
  );
  const port = await freePort();
  const server: ChildProcess = spawn(
    mariaBin('mariadbd', 'mysqld'),
    [
      '--no-defaults',
      '--user=mysql',
      `--datadir=${data}`,
      `--socket=${socket}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--pid-file=${join(dir, 'pid')}`,
      '--skip-log-bin',
      '--innodb-buffer-pool-size=32M',
    ],
    { stdio: 'ignore' },
  );
  const client = mariaBin('mariadb', 'mysql');
  await waitFor(
    () => {
      try {
        execFileSync(client, ['--no-defaults', '-S', socket, '-u', 'root', '-e', 'SELECT 1'], { stdio: 'pipe' });
        return true;
      } catch {
        if (server.exitCode !== null) throw new Error('mariadbd exited');
        return false;
      }
    },
    60_000,
    'MariaDB',
  );
  const password = 'maria-Test-Pa55word';
  execFileSync(
    client,
    [
      '--no-defaults',
      '-S',
      socket,
      '-u',
      'root',
      '-e',
      `CREATE DATABASE app; CREATE USER 'ferry'@'%' IDENTIFIED BY '${password}'; GRANT ALL ON app.* TO 'ferry'@'%';`,
    ],
    { stdio: 'pipe' },
  );
  return {
    host: '127.0.0.1',
    port,
    user: 'ferry',
    password,
    database: 'app',
    stop: async () => {
      server.kill('SIGKILL');
      await new Promise((r) => (server.exitCode !== null ? r(null) : server.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
