/**
 * Write-only secrets. The server stores sealed envelopes it cannot open, checks they are
 * sealed with the target's current key, and never returns one: listing gives names and dates.
 */
import type { FerryApp } from '../app.js';
import {
  FerryError, MAX_SECRET_BYTES, SecretName, isReservedSecretName, SetSecretRequest, sealedPlaintextBytes, type TargetKey,
} from '@ferry/protocol';
import { requireUser } from '../auth.js';
import type { ServerContext } from '../context.js';
import { parseInput } from '../validate.js';
import { secretView } from '../views.js';
import { findTarget } from './targets.js';

function secretName(name: string): string {
  const parsed = SecretName.safeParse(name);
  if (!parsed.success) throw new FerryError('FERRY_E_BAD_REQUEST', `"${name}" is not a secret name: use upper-case letters, digits and _, not starting with a digit (e.g. DB_PASSWORD).`);
  if (isReservedSecretName(parsed.data)) throw new FerryError('FERRY_E_BAD_REQUEST', `${parsed.data} is reserved for the task environment; pick another name.`);
  return parsed.data;
}

export function registerSecretRoutes(app: FerryApp, ctx: ServerContext): void {
  app.get<{ Params: { name: string } }>('/v1/targets/:name/key', async (req): Promise<TargetKey> => {
    const user = await requireUser(ctx.store, req);
    const target = await findTarget(ctx, user.orgId, req.params.name);
    if (!target.publicKeyPem || !target.keyId) {
      throw new FerryError('FERRY_E_TARGET_NO_KEY', `Target ${target.name} has no sealing key yet: ${target.agentMode === 'hosted' ? 'the hosted agent makes one when it next connects' : 'start its agent (ferry agent start) and it will make one'}.`);
    }
    return { orgId: target.orgId, targetId: target.id, kid: target.keyId, publicKeyPem: target.publicKeyPem };
  });

  app.put<{ Params: { name: string; secret: string } }>('/v1/targets/:name/secrets/:secret', async (req) => {
    const user = await requireUser(ctx.store, req, 'admin');
    const target = await findTarget(ctx, user.orgId, req.params.name);
    const name = secretName(req.params.secret);
    const { sealed } = parseInput(SetSecretRequest, req.body, 'secret');
    if (sealed.kid !== target.keyId) {
      throw new FerryError('FERRY_E_KEY_MISMATCH', `The value was sealed with key ${sealed.kid}, but target ${target.name} uses ${target.keyId ?? 'no key yet'}; seal it again.`);
    }
    const bytes = sealedPlaintextBytes(sealed);
    if (bytes > MAX_SECRET_BYTES) throw new FerryError('FERRY_E_SECRET_TOO_LARGE', `Secret ${name} is ${bytes} bytes; the limit is ${MAX_SECRET_BYTES}.`);
    const row = { targetId: target.id, orgId: target.orgId, name, kid: sealed.kid, sealed, bytes, setBy: user.actor, setAt: Date.now() };
    if ((await ctx.store.putSecret(row)) === 'too_many') {
      throw new FerryError('FERRY_E_TOO_MANY_SECRETS', `Target ${target.name} would be over its limit of secrets (count or total size).`);
    }
    await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'secret.set', subject: `${target.name}/${name}`, details: { kid: sealed.kid, bytes } });
    return secretView(row);
  });

  app.get<{ Params: { name: string } }>('/v1/targets/:name/secrets', async (req) => {
    const user = await requireUser(ctx.store, req);
    const target = await findTarget(ctx, user.orgId, req.params.name);
    return { secrets: (await ctx.store.listSecrets(target.id)).map(secretView) };
  });

  app.delete<{ Params: { name: string; secret: string } }>('/v1/targets/:name/secrets/:secret', async (req, reply) => {
    const user = await requireUser(ctx.store, req, 'admin');
    const target = await findTarget(ctx, user.orgId, req.params.name);
    const name = secretName(req.params.secret);
    if (!(await ctx.store.deleteSecret(target.id, name))) throw new FerryError('FERRY_E_SECRET_NOT_FOUND', `Target ${target.name} has no secret named ${name}.`);
    await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'secret.delete', subject: `${target.name}/${name}`, details: {} });
    return reply.code(204).send();
  });
}
