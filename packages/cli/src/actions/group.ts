import { CreateGroupRequest, GrantRequest, type GroupInfo } from '@ferry/protocol';
import { printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { parseOrUsage } from '../validate.js';

function grantsText(g: GroupInfo): string {
  return g.grants.map((x) => `${x.target}:${x.role}`).join(',') || '-';
}

export async function createGroup(name: string, opts: { json?: boolean }): Promise<void> {
  const body = parseOrUsage(CreateGroupRequest, { name }, 'group');
  await withClient(async (client, routes) => {
    const g = await client.call(routes.createGroup, { body });
    if (opts.json) return printJson(g);
    process.stdout.write(`Created group ${g.name}. Add members with: ferry group add ${g.name} NAME\n`);
  });
}

export async function addGroupMember(group: string, member: string, opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const g = await client.call(routes.addGroupMember, { params: { group, member } });
    if (opts.json) return printJson(g);
    process.stdout.write(`Group ${g.name}: ${g.members.join(', ')}.\n`);
  });
}

export async function removeGroupMember(group: string, member: string, opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const g = await client.call(routes.removeGroupMember, { params: { group, member } });
    if (opts.json) return printJson(g);
    process.stdout.write(`Group ${g.name}: ${g.members.join(', ') || 'no members'}.\n`);
  });
}

export async function listGroups(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { groups } = await client.call(routes.listGroups);
    if (opts.json) return printJson(groups);
    printTable(
      ['NAME', 'MEMBERS', 'GRANTS'],
      groups.map((g) => [g.name, g.members.join(',') || '-', grantsText(g)]),
    );
  });
}

export async function grantTarget(target: string, opts: { group: string; role: string; json?: boolean }): Promise<void> {
  const body = parseOrUsage(GrantRequest, { role: opts.role }, 'grant');
  await withClient(async (client, routes) => {
    const grant = await client.call(routes.grantTarget, { params: { name: target, group: opts.group }, body });
    if (opts.json) return printJson(grant);
    process.stdout.write(`Group ${grant.group} now has ${grant.role} on ${grant.target}.\n`);
  });
}

export async function revokeGrant(target: string, opts: { group: string }): Promise<void> {
  await withClient(async (client, routes) => {
    await client.call(routes.revokeGrant, { params: { name: target, group: opts.group } });
    process.stdout.write(`Group ${opts.group} no longer has a grant on ${target}.\n`);
  });
}
