import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

export function registerLoginCommand(program: Command): void {
  program
    .command('login')
    .description('store the server URL, token and pinned CA for later commands')
    .requiredOption('--server <url>', 'server URL, e.g. https://127.0.0.1:8443')
    .requiredOption('--token <token>', "API token (the admin token is in the server's data folder)")
    .option('--ca-fingerprint <sha256>', "SHA-256 fingerprint of the server's CA, as `ferry server` prints it")
    .option('--ca-file <file>', "the server's CA certificate (ca.pem in its data folder)")
    .action(lazyAction(() => import('../actions/login.js'), 'login'));
}
