/**
 * Write-only secrets. The server stores sealed envelopes it cannot open, checks they are
 * sealed with the target's current key, and never returns one: listing gives names and dates.
 */
import { FerryError, MAX_SECRET_BYTES, Routes, formatSize, SecretName, isReservedSecretName, sealedPlaintextBytes, type SealedSecret } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { UserPrincipal } from '../auth.js';
import { targetFor } from '../authz.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { settingConflict } from './targets.js';
import type { SecretRow, TargetRow } from '../store/types.js';
import { secretView } from '../views.js';

function secretName(name: string): string {
  const parsed = SecretName.safeParse(name);
  if (!parsed.success)
    throw new FerryError(
      'FERRY_E_BAD_REQUEST',
      `"${name}" is not a secret name: use upper-case letters, digits and _, not starting with a digit (e.g. DB_PASSWORD).`,
    );
  if (isReservedSecretName(parsed.data)) throw new FerryError('FERRY_E_BAD_REQUEST', `${parsed.data} is reserved for the task environment; pick another name.`);
  return parsed.data;
}

async function setSecret(ctx: ServerContext, user: UserPrincipal, target: TargetRow, name: string, sealed: SealedSecret): Promise<SecretRow> {
  if (sealed.kid !== target.keyId) {
    throw new FerryError(
      'FERRY_E_KEY_MISMATCH',
      `The value was sealed with key ${sealed.kid}, but target ${target.name} uses ${target.keyId ?? 'no key yet'}; seal it again.`,
    );
  }
  const bytes = sealedPlaintextBytes(sealed);
  if (bytes > MAX_SECRET_BYTES)
    throw new FerryError('FERRY_E_SECRET_TOO_LARGE', `Secret ${name} is ${bytes} bytes, over the limit of ${formatSize(MAX_SECRET_BYTES)}.`);
  const row = { targetId: target.id, orgId: target.orgId, name, kid: sealed.kid, sealed, bytes, setBy: user.actor, setAt: Date.now() };
  const put = await ctx.store.putSecret(row);
  if (put === 'too_many') throw new FerryError('FERRY_E_TOO_MANY_SECRETS', `Target ${target.name} would be over its limit of secrets (count or total size).`);
  if (put === 'key_changed') throw new FerryError('FERRY_E_KEY_MISMATCH', `Target ${target.name}'s key was rotated while the value was sealed; seal it again.`);
  if (put !== 'ok') throw settingConflict(target.name, put.conflict, 'setting');
  await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'secret.set', subject: `${target.name}/${name}`, details: { kid: sealed.kid } });
  return row;
}

function noKeyYet(target: TargetRow): FerryError {
  const how = target.agentMode === 'hosted' ? 'the hosted agent makes one when it next connects' : 'start its agent (ferry agent start) and it will make one';
  return new FerryError('FERRY_E_TARGET_NO_KEY', `Target ${target.name} has no sealing key yet: ${how}.`);
}

export function registerSecretRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(app, ctx, Routes.getTargetKey, async ({ caller: user, params }) => {
    const target = await targetFor(ctx.store, user, params.name, 'read');
    if (!target.publicKeyPem || !target.keyId) throw noKeyYet(target);
    return { orgId: target.orgId, targetId: target.id, kid: target.keyId, publicKeyPem: target.publicKeyPem };
  });

  addRoute(
    app,
    ctx,
    Routes.setSecret,
    async ({ caller: user, params, body }) => {
      const target = await targetFor(ctx.store, user, params.name, 'manage');
      return secretView(await setSecret(ctx, user, target, secretName(params.secret), body.sealed));
    },
    { role: 'admin', what: 'secret' },
  );

  addRoute(app, ctx, Routes.listSecrets, async ({ caller: user, params }) => {
    const target = await targetFor(ctx.store, user, params.name, 'read');
    return { secrets: (await ctx.store.listSecrets(target.id)).map(secretView) };
  });

  addRoute(
    app,
    ctx,
    Routes.deleteSecret,
    async ({ caller: user, params }) => {
      const target = await targetFor(ctx.store, user, params.name, 'manage');
      const name = secretName(params.secret);
      if (!(await ctx.store.deleteSecret(target.id, name)))
        throw new FerryError('FERRY_E_SECRET_NOT_FOUND', `Target ${target.name} has no secret named ${name}.`);
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'secret.delete', subject: `${target.name}/${name}`, details: {} });
    },
    { role: 'admin' },
  );
}
