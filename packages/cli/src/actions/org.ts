import { CreateOrgRequest } from '@ferry/protocol';
import { ago, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { parseOrUsage } from '../validate.js';

export async function createOrg(name: string, opts: { json?: boolean }): Promise<void> {
  const body = parseOrUsage(CreateOrgRequest, { name }, 'organization');
  await withClient(async (client, routes) => {
    const org = await client.call(routes.createOrg, { body });
    if (opts.json) return printJson(org);
    process.stderr.write(
      `Created organization ${org.name} (${org.id}). Its admin service account "${org.admin}" has this token, shown once:\n` +
        `  log in with: ferry login --server URL --token <token> --ca-fingerprint SHA256\n`,
    );
    process.stdout.write(`${org.adminToken}\n`);
  });
}

export async function listOrgs(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { orgs } = await client.call(routes.listOrgs);
    if (opts.json) return printJson(orgs);
    printTable(
      ['NAME', 'ID', 'CREATED'],
      orgs.map((o) => [o.name, o.id, ago(o.createdAt)]),
    );
  });
}
