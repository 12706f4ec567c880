import { CreateTokenRequest, parseDurationSeconds } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { ago, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { parseOrUsage } from '../validate.js';

interface CreateTokenOptions {
  role?: string;
  personal?: boolean;
  expires?: string;
  json?: boolean;
}

function expiresIn(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seconds = parseDurationSeconds(text);
  if (seconds === undefined || seconds < 1) throw new UsageError(`--expires ${text} is not a duration of a second or more; use e.g. 12h or 90d.`);
  return Math.round(seconds);
}

export async function createToken(name: string, opts: CreateTokenOptions): Promise<void> {
  if (!!opts.personal === (opts.role !== undefined))
    throw new UsageError('Give either --role ROLE (a new service account) or --personal (a token for yourself).');
  const expiresInSeconds = expiresIn(opts.expires);
  const body = parseOrUsage(
    CreateTokenRequest,
    {
      name,
      personal: !!opts.personal,
      ...(opts.role !== undefined ? { role: opts.role } : {}),
      ...(expiresInSeconds !== undefined ? { expiresInSeconds } : {}),
    },
    'token',
  );
  await withClient(async (client, routes) => {
    const t = await client.call(routes.createToken, { body });
    if (opts.json) return printJson(t);
    const who = opts.personal ? `for you (${t.principal})` : `for the new service account ${t.principal} (${t.role})`;
    process.stderr.write(`Token ${t.name} (${t.id}) ${who}, ${t.expiresAt ? `until ${t.expiresAt}` : 'without expiry'}; shown once:\n`);
    process.stdout.write(`${t.token}\n`);
  });
}

export async function listTokens(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { tokens } = await client.call(routes.listTokens);
    if (opts.json) return printJson(tokens);
    printTable(
      ['ID', 'NAME', 'PRINCIPAL', 'ROLE', 'CREATED', 'EXPIRES', 'LAST USED', 'STATUS'],
      tokens.map((t) => [
        t.id,
        t.name,
        t.principalKind === 'service' ? `${t.principal} (service)` : t.principal,
        t.role,
        ago(t.createdAt),
        t.expiresAt ?? 'never',
        ago(t.lastUsedAt),
        t.revokedAt ? 'revoked' : t.expiresAt && Date.parse(t.expiresAt) <= Date.now() ? 'expired' : 'active',
      ]),
    );
  });
}

export async function revokeToken(idOrName: string): Promise<void> {
  await withClient(async (client, routes) => {
    await client.call(routes.revokeToken, { params: { token: idOrName } });
    process.stdout.write(`Revoked token ${idOrName}.\n`);
  });
}
