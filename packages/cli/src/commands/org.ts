import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/org.js');

export function registerOrgCommands(program: Command): void {
  const org = program.command('org').description('organizations: each one isolated from the others');
  org
    .command('create <name>')
    .description("create an organization (instance administrators only); prints its admin's token once, as the last line")
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'createOrg'));
  org
    .command('list')
    .description('list organizations (instance administrators see all, others their own)')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'listOrgs'));
  const sso = org.command('sso').description("single sign-on through the organization's OpenID Connect provider");
  const ssoActions = (): Promise<Record<string, unknown>> => import('../actions/sso.js');
  sso
    .command('set')
    .description('sign people in through an OpenID Connect provider (admins); the redirect URI to register there is <server>/v1/sso/callback')
    .requiredOption('--issuer <url>', "the provider's issuer URL, e.g. https://accounts.google.com")
    .requiredOption('--client-id <id>', 'the client id the provider gave Ferry')
    .requiredOption('--client-secret-file <file>', 'a file holding the client secret (- for stdin), so it is not on the command line')
    .requiredOption('--domains <list>', 'comma-separated e-mail domains allowed to sign in, e.g. a.com,b.com')
    .option('--groups-claim <claim>', 'an ID token claim listing groups; those named like a Ferry group make the person a member')
    .option('--json', 'print JSON')
    .action(lazyAction(ssoActions, 'setSso'));
  sso.command('show').description('show the single sign-on settings (admins)').option('--json', 'print JSON').action(lazyAction(ssoActions, 'showSso'));
}
