/**
 * Keys follow the agents. Every agent has an identity key pair and tells the server its public
 * half and which target keys it holds on its first poll. When an agent serves a target whose key
 * it lacks, the poll answers of the target's key holders ask them to wrap the key to its identity
 * key; the server keeps the wrapped copy (which it cannot open) until the newcomer's poll picks it
 * up, unwraps it, checks the key id and confirms. A rotation is asked of a holder the same way.
 *
 *   newcomer: announce ──▶ holder's poll: keyHandovers ──▶ PUT wrapped copy ──▶ newcomer's poll:
 *   keyDeliveries ──▶ unwrap, check key id, save ──▶ POST received (now a holder: gets key tasks)
 *
 * Until an agent holds the key, eligibility.ts keeps tasks that need it (the target has secrets)
 * from it. Nothing here ever sees a private key in the clear.
 */
import { FerryError, type AgentKeys, type ParsedBody, type PollResponse, type Routes, type SealedSecret } from '@ferry/protocol';
import type { ServerContext } from './context.js';
import type { KeyNeed } from './eligibility.js';
import { mayServe } from './eligibility.js';
import { onlineSince } from './presence.js';
import { sealingKeyId } from './sealing-key.js';
import type { AgentRow, Store, TargetKeyState, TargetRow } from './store/types.js';

/** Hand-overs and deliveries per poll answer: enough to keep up, small enough to answer fast. */
const KEY_WORK_PER_ANSWER = 20;
/**
 * Polls skip the key queries while nothing key-related changed (the hub's key epoch), but look at
 * least this often anyway. The queries cost about 0.3 ms with 10 targets and 7 ms with 1000 hosted
 * targets, too much for every poll answer.
 */
const KEY_WORK_MAX_AGE_MS = 30_000;

type KeyWork = Pick<PollResponse, 'keyHandovers' | 'keyDeliveries' | 'keyRotations'>;

/** Whether a task of `target` needs its key now (it has secrets), and who holds it. */
export async function keyNeedOf(store: Store, target: TargetRow): Promise<KeyNeed> {
  return keyNeedFrom(await store.targetKeyState(target.id));
}

/** Who may run a task of a target in this key state: anyone when it has no secrets, else its key holders. */
export function keyNeedFrom(state: TargetKeyState): KeyNeed {
  if (state.secretCount === 0) return { needed: false };
  return { needed: true, holders: new Set(state.holders.map((h) => h.agentId)) };
}

/** The agent's identity key and the keys it holds, as it says on its first poll. */
export async function acceptAgentKeys(ctx: ServerContext, agent: AgentRow, keys: AgentKeys): Promise<void> {
  const identityKeyId = sealingKeyId(keys.identityKeyPem);
  const now = Date.now();
  await ctx.store.setAgentIdentityKey(agent.id, keys.identityKeyPem, identityKeyId, now);
  await ctx.store.replaceHeldKeys(agent, keys.held, now);
  // Holders of targets this agent lacks may be waiting in long polls: let them see the work now.
  ctx.hub.keyWorkChanged();
  ctx.hub.notifyAllAgents();
}

/** What this agent should do about keys, skipping the queries while nothing changed since it last found none. */
export async function keyWorkFor(ctx: Pick<ServerContext, 'store' | 'hub'>, agent: AgentRow): Promise<KeyWork> {
  const now = Date.now();
  if (ctx.hub.keyWorkUnchanged(agent.id, now, KEY_WORK_MAX_AGE_MS)) return {};
  const epoch = ctx.hub.keyWorkEpoch;
  const work = await lookForKeyWork(ctx.store, agent);
  if (!hasKeyWork(work)) ctx.hub.noKeyWorkFound(agent.id, epoch, now);
  return work;
}

/** What this agent should do about keys: wrap for others, take copies wrapped for it, rotate. */
async function lookForKeyWork(store: Store, agent: AgentRow): Promise<KeyWork> {
  const [handovers, deliveries, rotations] = await Promise.all([
    store.keyHandoversFor(agent, KEY_WORK_PER_ANSWER),
    store.keyDeliveriesFor(agent, KEY_WORK_PER_ANSWER),
    store.keyRotationsFor(agent),
  ]);
  const work: KeyWork = {};
  if (handovers.length > 0) {
    work.keyHandovers = handovers.flatMap(({ target, agentId, identityKeyPem }) =>
      target.keyId ? [{ targetId: target.id, targetName: target.name, orgId: target.orgId, keyId: target.keyId, agentId, identityKeyPem }] : [],
    );
  }
  if (deliveries.length > 0) {
    work.keyDeliveries = deliveries.flatMap(({ target, wrapped }) =>
      target.keyId ? [{ targetId: target.id, targetName: target.name, orgId: target.orgId, keyId: target.keyId, wrapped }] : [],
    );
  }
  if (rotations.length > 0) {
    work.keyRotations = rotations.flatMap(({ target, secrets }) =>
      target.keyId
        ? [
            {
              targetId: target.id,
              targetName: target.name,
              orgId: target.orgId,
              keyId: target.keyId,
              secrets: secrets.map((s) => ({ name: s.name, sealed: s.sealed, setAt: s.setAt })),
            },
          ]
        : [],
    );
  }
  return work;
}

/** Whether an answer carries key work (then the poll answers at once). */
export function hasKeyWork(work: KeyWork): boolean {
  return !!(work.keyHandovers?.length || work.keyDeliveries?.length || work.keyRotations?.length);
}

/** A target this agent serves; not found otherwise (agents treat 403 as fatal, and must not probe other targets). */
async function servedTarget(ctx: ServerContext, agent: AgentRow, targetId: string): Promise<TargetRow> {
  const target = await ctx.store.getTargetById(targetId);
  if (!target || !mayServe(agent, target)) throw new FerryError('FERRY_E_TARGET_NOT_FOUND', `Agent ${agent.name} serves no target ${targetId}.`);
  return target;
}

function keyChanged(target: TargetRow, keyId: string): FerryError {
  return new FerryError('FERRY_E_KEY_CHANGED', `Target ${target.name} uses key ${target.keyId ?? '(none)'}, not ${keyId}.`, {
    details: { keyId: target.keyId },
  });
}

/** A holder posts a copy of the target's key wrapped for `recipientId`. */
export async function handOverKey(
  ctx: ServerContext,
  holder: AgentRow,
  targetId: string,
  recipientId: string,
  keyId: string,
  wrapped: SealedSecret,
): Promise<void> {
  const target = await servedTarget(ctx, holder, targetId);
  const recipient = await ctx.store.getAgent(recipientId);
  if (!recipient || !mayServe(recipient, target)) throw new FerryError('FERRY_E_AGENT_NOT_FOUND', `No agent ${recipientId} serves target ${target.name}.`);
  if (!(await ctx.store.putKeyHandover(target.id, recipient.id, keyId, holder.id, wrapped, Date.now()))) throw keyChanged(target, keyId);
  ctx.hub.keyWorkChanged();
  ctx.hub.notifyAgent(recipient.id);
  await ctx.audit({
    orgId: target.orgId,
    actor: `agent:${holder.name}`,
    action: 'target.key.handover',
    subject: target.name,
    details: { keyId, to: recipient.id, toName: recipient.name },
  });
}

/** The recipient unwrapped the key and checked its id: it holds the key from now on. */
export async function keyReceived(ctx: ServerContext, agent: AgentRow, targetId: string, keyId: string): Promise<void> {
  const target = await servedTarget(ctx, agent, targetId);
  if (!(await ctx.store.addKeyHolder(target.id, agent.id, keyId, Date.now()))) throw keyChanged(target, keyId);
  ctx.hub.keyWorkChanged(); // a new holder: it may now hand the key on, or rotate it
  await ctx.audit({ orgId: target.orgId, actor: `agent:${agent.name}`, action: 'target.key.received', subject: target.name, details: { keyId } });
}

/**
 * A user asks for a new key; a holder does the work at its next poll. With `discardSecrets`, and
 * only when no agent holds the key any more, the key and its secrets go at once and the
 * target's agents make a new key (the secrets must be set again).
 */
export async function requestRotation(ctx: ServerContext, actor: string, target: TargetRow, discardSecrets: boolean): Promise<void> {
  if (!target.keyId) throw new FerryError('FERRY_E_TARGET_NO_KEY', `Target ${target.name} has no sealing key yet, so there is nothing to rotate.`);
  const state = await ctx.store.targetKeyState(target.id);
  if (discardSecrets) return discardKey(ctx, actor, target, target.keyId, state.holders.length);
  if (state.holders.length === 0) {
    throw new FerryError(
      'FERRY_E_TARGET_NO_KEY',
      `No agent holds the key of target ${target.name}, so none can re-seal its secrets. Start an agent that has it; or, if none is left, ` +
        `\`ferry target rotate-key ${target.name} --discard-secrets\` makes a new key and deletes the secrets, which must then be set again.`,
    );
  }
  await ctx.store.requestKeyRotation(target.id, Date.now());
  ctx.hub.keyWorkChanged();
  ctx.hub.notifyServing(target);
  await ctx.audit({ orgId: target.orgId, actor, action: 'target.key.rotate.request', subject: target.name, details: { keyId: target.keyId } });
}

async function discardKey(ctx: ServerContext, actor: string, target: TargetRow, keyId: string, holders: number): Promise<void> {
  if (holders > 0) {
    throw new FerryError(
      'FERRY_E_BAD_REQUEST',
      `${holders} agent(s) hold the key of target ${target.name}: rotate it without --discard-secrets, which keeps the secrets.`,
    );
  }
  const dropped = await ctx.store.resetTargetKey(target.id, keyId);
  if (!dropped) throw keyChanged(target, keyId);
  ctx.hub.notifyServing(target); // its agents make the new key now
  await ctx.audit({ orgId: target.orgId, actor, action: 'target.key.reset', subject: target.name, details: { oldKeyId: keyId, secretsDeleted: dropped } });
}

/** A holder's rotation: new public key and every value re-sealed, applied atomically if nothing changed meanwhile. */
export async function applyRotation(ctx: ServerContext, agent: AgentRow, targetId: string, body: ParsedBody<typeof Routes.rotateKey>): Promise<string> {
  const target = await servedTarget(ctx, agent, targetId);
  const keyId = sealingKeyId(body.publicKeyPem);
  if (body.secrets.some((s) => s.sealed.kid !== keyId))
    throw new FerryError('FERRY_E_BAD_REQUEST', `Every re-sealed value must be sealed with the new key ${keyId}.`);
  const result = await ctx.store.rotateTargetKey({
    targetId: target.id,
    oldKeyId: body.oldKeyId,
    publicKeyPem: body.publicKeyPem,
    keyId,
    agentId: agent.id,
    secrets: body.secrets,
    now: Date.now(),
  });
  if (result !== 'ok') {
    const why = result === 'key_changed' ? `its key is no longer ${body.oldKeyId}` : 'its secrets changed meanwhile';
    throw new FerryError('FERRY_E_KEY_CHANGED', `The rotation of target ${target.name} was not applied: ${why}.`);
  }
  ctx.hub.keyWorkChanged();
  ctx.hub.notifyServing(target);
  await ctx.audit({
    orgId: target.orgId,
    actor: `agent:${agent.name}`,
    action: 'target.key.rotate',
    subject: target.name,
    details: { oldKeyId: body.oldKeyId, keyId, resealed: body.secrets.length },
  });
  return keyId;
}

/** Names of the targets with secrets (of one organization, or of all: null) whose key only this agent holds: revoking it loses them. */
export async function onlyHolderOf(ctx: ServerContext, orgId: string | null, agentId: string): Promise<string[]> {
  return (await ctx.store.targetsOnlyHeldBy(agentId)).filter((t) => orgId === null || t.orgId === orgId).map((t) => t.name);
}

/** The key holders of a target as the API shows them. */
export async function keyHoldersView(
  ctx: ServerContext,
  target: TargetRow,
): Promise<{ keyHolders: { id: string; name: string; online: boolean }[]; keyRotationPending: boolean }> {
  const state = await ctx.store.targetKeyState(target.id);
  const since = onlineSince(ctx.config);
  return {
    keyHolders: state.holders.map((h) => ({ id: h.agentId, name: h.name, online: h.lastSeenAt >= since })),
    keyRotationPending: state.rotationRequested,
  };
}
