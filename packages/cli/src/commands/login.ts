import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

export function registerLoginCommand(program: Command): void {
  program
    .command('login')
    .description('sign in (--email: password at a hidden prompt) or store a token, with the server URL and pinned CA, for later commands')
    .requiredOption('--server <url>', 'server URL, e.g. https://127.0.0.1:8443; several servers (replicas) comma-separated, tried in turn')
    .option('--email <email>', 'sign in as this person: asks for the password (or reads it from stdin) and stores a 30-day personal token')
    .option('--org <name>', 'with --email: the organization, when the e-mail has accounts in several')
    .option(
      '--token <token>',
      'store this API token; `-` reads it from stdin (without --email and --token, a piped stdin or FERRY_TOKEN is used), so it need not be on the command line',
    )
    .option('--sso <org>', "sign in through the organization's identity provider in a browser (a loopback redirect to this CLI)")
    .option('--no-browser', 'with --sso: only print the URL, do not try to open a browser')
    .option('--device', 'with --sso, on a machine without a browser: print a URL and a code to confirm on any device (RFC 8628)')
    .option('--ca-fingerprint <sha256>', "SHA-256 fingerprint of the server's CA, as `ferry server` prints it")
    .option('--ca-file <file>', "the server's CA certificate (ca.pem in its data folder)")
    .action(lazyAction(() => import('../actions/login.js'), 'login'));
}
