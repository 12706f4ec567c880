import { fileURLToPath } from 'node:url';
import { relative } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';

export function registerServerCommand(program: Command): void {
  program.command('server')
    .description('start the control plane (HTTPS) with an embedded hosted agent')
    .option('--data-dir <dir>', 'data folder (default ./ferry-data)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8443)')
    .option('--database <url>', 'database URL (default: SQLite in the data folder)')
    .option('--public-url <url>', 'URL agents and clients use to reach this server (goes into join tokens)')
    .option('--no-embedded-agent', 'do not start the embedded hosted agent')
    .option('--config <file>', 'JSON config file (also FERRY_SERVER_CONFIG)')
    .action(async (opts: { dataDir?: string; listen?: string; database?: string; publicUrl?: string; embeddedAgent: boolean; config?: string }) => {
      // Loaded here, not at the top: `ferry agent start` and the other commands need none of it.
      const { loadServerConfig, startServer } = await import('@ferry/server');
      const config = loadServerConfig({
        dataDir: opts.dataDir, listen: opts.listen, database: opts.database, publicUrl: opts.publicUrl,
        embeddedAgent: opts.embeddedAgent === false ? false : undefined,
      }, process.env, opts.config ?? process.env.FERRY_SERVER_CONFIG);
      const cli = fileURLToPath(new URL('../main.js', import.meta.url));
      const server = await startServer({ config, embeddedAgentCommand: [process.execPath, cli, 'agent', 'start'] }).catch((err: unknown) => {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw new UsageError(`Cannot listen on ${config.listen}: the address is in use (another ferry server?). Choose another with --listen HOST:PORT.`);
        if (code === 'EACCES') throw new UsageError(`Cannot listen on ${config.listen}: permission denied. Use a port above 1023 or run with the needed privilege.`);
        throw err;
      });
      const tokenPath = relative(process.cwd(), server.adminTokenFile) || server.adminTokenFile;
      const shownPath = tokenPath.startsWith('..') ? server.adminTokenFile : tokenPath;
      process.stdout.write([
        `Ferry server listening on ${server.url}`,
        `CA fingerprint (SHA-256): ${server.caFingerprint}`,
        `Admin token: ${shownPath}${server.adminTokenCreated ? ' (created now)' : ''}`,
        config.embeddedAgent ? 'Embedded hosted agent: starting' : 'Embedded hosted agent: off (--no-embedded-agent)',
        '',
        'Log in from another terminal with:',
        `  ${process.env.FERRY_CLI_HINT ?? 'ferry'} login --server ${server.url} --token "$(cat ${shownPath})" --ca-fingerprint ${server.caFingerprint}`,
        '',
      ].join('\n'));
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`${signal}: shutting down\n`);
        server.close().then(() => process.exit(0), (err: unknown) => {
          process.stderr.write(`shutdown failed: ${(err as Error).message}\n`);
          process.exit(1);
        });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
