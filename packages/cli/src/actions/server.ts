import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningServer, ServerConfig } from '@ferry/server';
import { UsageError } from '../errors.js';

interface ServerOptions {
  dataDir?: string;
  listen?: string;
  database?: string;
  databasePoolSize?: string;
  publicUrl?: string;
  embeddedAgent: boolean;
  outputRetention?: string;
  orgOutputQuota?: string;
  logFormat?: string;
  config?: string;
}

function listenError(err: unknown, listen: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new UsageError(`Cannot listen on ${listen}: the address is in use (another ferry server?). Choose another with --listen HOST:PORT.`);
  if (code === 'EACCES') return new UsageError(`Cannot listen on ${listen}: permission denied. Use a port above 1023 or run with the needed privilege.`);
  return err;
}

/** A word for a POSIX shell: single-quoted unless it is plainly safe. */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

function printBanner(server: RunningServer, config: ServerConfig): void {
  // Absolute, so the login line works from any folder (the server's data folder is resolved).
  const shownPath = server.adminTokenFile;
  process.stdout.write(
    [
      `Ferry server listening on ${server.url}`,
      `CA fingerprint (SHA-256): ${server.caFingerprint}`,
      `Admin token: ${shownPath}${server.adminTokenCreated ? ' (created now)' : ''}`,
      config.embeddedAgent ? 'Embedded hosted agent: starting' : 'Embedded hosted agent: off (--no-embedded-agent)',
      '',
      'Log in from another terminal with:',
      `  ${process.env.FERRY_CLI_HINT ?? 'ferry'} login --server ${server.url} --token "$(cat ${shellWord(shownPath)})" --ca-fingerprint ${server.caFingerprint}`,
      '',
      `Web UI: ${server.webUrl}`,
      ...(server.signInLink
        ? [
            'Sign in there as admin with this one-time link (it works once, for an hour; each start prints a new one;',
            'the browser warns about the private CA first: its fingerprint is above):',
            `  ${server.signInLink}`,
          ]
        : []),
      '',
    ].join('\n'),
  );
}

/** The first SIGINT/SIGTERM shuts down in order; a second one exits at once. */
function stopOnSignals(server: RunningServer): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`${signal} again: stopping now\n`);
      server.kill();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    stopping = true;
    process.stderr.write(`${signal}: shutting down (${signal === 'SIGINT' ? 'Ctrl-C' : 'signal'} again to stop at once)\n`);
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`shutdown failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export async function startServer(opts: ServerOptions): Promise<void> {
  // Only `ferry server` loads the server package: the agent and the other commands need none of it.
  const server = await import('@ferry/server');
  const config = server.loadServerConfig(
    {
      dataDir: opts.dataDir,
      listen: opts.listen,
      database: opts.database,
      databasePoolSize: opts.databasePoolSize,
      publicUrl: opts.publicUrl,
      embeddedAgent: opts.embeddedAgent === false ? false : undefined,
      outputRetention: opts.outputRetention,
      orgOutputQuota: opts.orgOutputQuota,
      logFormat: opts.logFormat,
    },
    process.env,
    opts.config ?? process.env.FERRY_SERVER_CONFIG,
  );
  // The embedded agent runs this very command (bundled or not): `ferry agent start`.
  const cli = process.argv[1] ?? fileURLToPath(new URL('../main.js', import.meta.url));
  const running = await server.startServer({ config, embeddedAgentCommand: [process.execPath, cli, 'agent', 'start'] }).catch((err: unknown) => {
    throw listenError(err, config.listen);
  });
  printBanner(running, config);
  stopOnSignals(running);
}

/** `ferry server migrate --from sqlite:PATH --to postgres://…`: copies the database, then says what moved. */
export async function migrateServer(opts: { from: string; to: string }): Promise<void> {
  if (!opts.from.startsWith('sqlite:')) throw new UsageError(`--from wants sqlite:PATH (the server's ferry.db), not "${opts.from}".`);
  if (!/^postgres(ql)?:\/\//.test(opts.to)) throw new UsageError('--to wants a PostgreSQL URL: postgres://USER:PASSWORD@HOST:PORT/DATABASE.');
  const file = resolve(opts.from.replace(/^sqlite:(\/\/)?/, ''));
  if (!existsSync(file)) throw new UsageError(`No SQLite database at ${file}.`);
  const server = await import('@ferry/server');
  const report = await server.migrateSqliteToPostgres(file, opts.to);
  const rows = Object.entries(report.tables)
    .filter(([, n]) => n > 0)
    .map(([table, n]) => `  ${table}: ${n}`);
  process.stdout.write(
    [
      `Moved ${file} to PostgreSQL:`,
      ...rows,
      `Audit chain verified: ${report.auditEntries} entries.`,
      'Start the server with --database <the same URL> and the same --data-dir (its CA, keys and tokens stay there).',
      '',
    ].join('\n'),
  );
}
