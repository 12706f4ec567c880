import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

export function registerServerCommand(program: Command): void {
  program
    .command('server')
    .description('start the control plane (HTTPS) with an embedded hosted agent')
    .option('--data-dir <dir>', 'data folder (default ./ferry-data)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8443)')
    .option('--database <url>', 'database URL (default: SQLite in the data folder)')
    .option('--public-url <url>', 'URL agents and clients use to reach this server (goes into join tokens)')
    .option('--no-embedded-agent', 'do not start the embedded hosted agent')
    .option('--output-retention <duration>', "remove finished tasks' stored output after this long, e.g. 30d (default 90d; 0 keeps it)")
    .option('--org-output-quota <size>', 'task output one organization may store, e.g. 50GiB (default 10GiB; 0 for none)')
    .option('--log-format <format>', 'json or pretty (default: pretty when stderr is a terminal, else json)')
    .option('--config <file>', 'JSON config file (also FERRY_SERVER_CONFIG)')
    .action(lazyAction(() => import('../actions/server.js'), 'startServer'));
}
