import { INVITATION_PREFIX, InviteUserRequest, Routes, SetUserRoleRequest } from '@ferry/protocol';
import { createNodeClient } from '@ferry/client/node';
import { UsageError } from '../errors.js';
import { printJson, printTable } from '../format.js';
import { promptHidden, readStdinText } from '../prompt.js';
import { withClient } from '../run-command.js';
import { parseOrUsage } from '../validate.js';
import { saveLogin, serverOrigin, signIn, trustedCa, type TrustOptions } from './login.js';

export async function inviteUser(email: string, opts: { role: string; json?: boolean }): Promise<void> {
  const body = parseOrUsage(InviteUserRequest, { email, role: opts.role }, 'invitation');
  await withClient(async (client, routes) => {
    const inv = await client.call(routes.inviteUser, { body });
    if (opts.json) return printJson(inv);
    process.stdout.write(
      `Invited ${inv.email} as ${inv.role}; the invitation works once, until ${inv.expiresAt}. Send them this URL (open it, or \`ferry user accept URL\`):\n${inv.url}\n`,
    );
  });
}

export async function listUsers(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const list = await client.call(routes.listUsers);
    if (opts.json) return printJson(list);
    printTable(
      ['EMAIL', 'ROLE', 'GROUPS', 'STATUS'],
      [
        ...list.users.map((u) => [u.email, u.role, u.groups.join(',') || '-', 'active']),
        ...list.invitations.map((i) => [i.email, i.role, '-', `invited, until ${i.expiresAt}`]),
      ],
    );
  });
}

export async function setUserRole(email: string, role: string, opts: { json?: boolean }): Promise<void> {
  const body = parseOrUsage(SetUserRoleRequest, { role }, 'role');
  await withClient(async (client, routes) => {
    const u = await client.call(routes.setUserRole, { params: { email }, body });
    if (opts.json) return printJson(u);
    process.stdout.write(`${u.email} is now ${u.role}.\n`);
  });
}

export async function removeUser(email: string): Promise<void> {
  await withClient(async (client, routes) => {
    await client.call(routes.removeUser, { params: { email } });
    process.stdout.write(`Removed ${email}; their tokens and sessions no longer work.\n`);
  });
}

/** The server and the invitation's secret in an invitation URL (`https://host/v1/invite#ferry_i_…`). */
function parseInvitationUrl(text: string): { origin: string; secret: string } {
  const origin = serverOrigin(text, 'The invitation URL');
  const secret = decodeURIComponent(new URL(text).hash.slice(1));
  if (!secret.startsWith(`${INVITATION_PREFIX}_`)) throw new UsageError('That is not an invitation URL: it should end in #ferry_i_… (copy all of it).');
  return { origin, secret };
}

async function newPassword(email: string): Promise<string> {
  if (!process.stdin.isTTY) return readStdinText();
  const first = await promptHidden(`New password for ${email} (at least 12 characters, not shown):`);
  const again = await promptHidden('Again:');
  if (first !== again) throw new UsageError('The two passwords differ; nothing was changed. Run the command again.');
  return first;
}

export async function acceptInvitation(url: string, opts: TrustOptions): Promise<void> {
  const { origin, secret } = parseInvitationUrl(url);
  const caPem = await trustedCa(origin, opts);
  const client = createNodeClient({ serverUrl: origin, caPem, userAgent: 'ferry-cli' });
  let email: string;
  let password: string;
  let org: string;
  try {
    const inv = await client.call(Routes.getInvitation, { body: { invitation: secret } });
    process.stderr.write(`Invitation for ${inv.email}: ${inv.role} of ${inv.org}.\n`);
    password = await newPassword(inv.email);
    email = (await client.call(Routes.acceptInvitation, { body: { invitation: secret, password } })).email;
    org = inv.org;
  } finally {
    await client.close();
  }
  // Signed in at once with the new password, as `ferry login --email` would.
  const s = await signIn(origin, caPem, { email, password, org });
  const saved = await saveLogin(origin, caPem, s.token);
  process.stdout.write(`Welcome, ${email} (${s.role} of ${s.org}). Logged in to ${origin}; settings saved in ${saved}.\n`);
}
