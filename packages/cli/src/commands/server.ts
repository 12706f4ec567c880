import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

export function registerServerCommand(program: Command): void {
  const server = program
    .command('server')
    .description('start the control plane (HTTPS) with an embedded hosted agent')
    .option('--data-dir <dir>', 'data folder (default ./ferry-data)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8443)')
    .option('--database <url>', 'database URL: sqlite:PATH or postgres://… (default: SQLite in the data folder; also FERRY_DATABASE_URL)')
    .option('--database-pool-size <n>', 'PostgreSQL connections per server at most (default 10)')
    .option('--public-url <url>', 'URL agents and clients use to reach this server (goes into join tokens)')
    .option('--no-embedded-agent', 'do not start the embedded hosted agent')
    .option('--output-retention <duration>', "remove finished tasks' stored output after this long, e.g. 30d (default 90d; 0 keeps it)")
    .option('--org-output-quota <size>', 'task output one organization may store, e.g. 50GiB (default 10GiB; 0 for none)')
    .option('--log-format <format>', 'json or pretty (default: pretty when stderr is a terminal, else json)')
    .option('--config <file>', 'JSON config file (also FERRY_SERVER_CONFIG)')
    .action(lazyAction(() => import('../actions/server.js'), 'startServer'));
  // `ferry server install --listen X`: options after a subcommand's name are the subcommand's.
  server.enablePositionalOptions();
  registerServerInstallCommands(server);
  server
    .command('migrate')
    .description('move an installation from SQLite to an empty PostgreSQL database (stop the server first)')
    .requiredOption('--from <sqlite:PATH>', 'the SQLite database, e.g. sqlite:/var/lib/ferry/ferry.db')
    .requiredOption('--to <postgres-url>', 'the empty PostgreSQL database, postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=verify-full&sslrootcert=FILE]')
    .action(lazyAction(() => import('../actions/server.js'), 'migrateServer'));
}

/** `ferry server install|uninstall`: a systemd service on a Linux host (actions/install.ts). */
function registerServerInstallCommands(server: Command): void {
  const install = (): Promise<Record<string, unknown>> => import('../actions/install.js');
  server
    .command('install')
    .description('install the server as a systemd service (ferry-server.service; unprivileged, data in /var/lib/ferry), enable and start it; run as root')
    .option('--listen <host:port>', 'address to listen on (default 0.0.0.0:8443)')
    .option('--public-url <url>', 'URL agents and clients use to reach this server')
    .option('--root <DIR>', 'write the files under DIR and do not run systemctl (for images and checks)')
    .action(lazyAction(install, 'installServer'));
  server
    .command('uninstall')
    .description('stop, disable and remove the ferry-server service (its data stays unless --purge)')
    .option('--purge', "also remove the server's data folder")
    .option('--root <DIR>', 'as for install')
    .action(lazyAction(install, 'uninstallServer'));
}
