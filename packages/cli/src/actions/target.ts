import { ApiError } from '@ferry/client';
import { CreateTargetRequest, UpdateTargetRequest, formatSize, parseDurationSeconds, type Target } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { formatDuration } from '../exit-codes.js';
import { ago, printFields, printJson, printTable } from '../format.js';
import { limitTooHigh, limitsFromFlags } from '../limit-flags.js';
import { withClient } from '../run-command.js';
import { parseOrUsage } from '../validate.js';
import { reviewFromFlags, reviewPolicyLine, type ReviewFlags } from '../review-flags.js';

interface TargetLimitOptions {
  timeout?: string;
  maxOutput?: string;
  maxProcesses?: string;
  memory?: string;
}

interface TargetCreateOptions extends TargetLimitOptions, ReviewFlags {
  type: string;
  agent: string;
  network?: string;
  redact?: string;
  setting?: string[];
  json?: boolean;
}

interface TargetUpdateOptions extends TargetLimitOptions, ReviewFlags {
  network?: string;
  redact?: string;
  setting?: string[];
  unsetSetting?: string[];
  json?: boolean;
}

/** `--setting KEY=VALUE` flags as a map; the value may contain "=" and may be empty. */
function settingsFrom(flags: readonly string[] | undefined): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const flag of flags ?? []) {
    const eq = flag.indexOf('=');
    if (eq <= 0) throw new UsageError(`--setting ${flag}: write it as KEY=VALUE (e.g. --setting PG_HOST=db.internal).`);
    const key = flag.slice(0, eq);
    if (Object.hasOwn(settings, key)) throw new UsageError(`--setting ${key} is given twice.`);
    settings[key] = flag.slice(eq + 1);
  }
  return settings;
}

function limitFlags(opts: TargetLimitOptions): Record<string, string | undefined> {
  return { timeoutSeconds: opts.timeout, maxOutputBytes: opts.maxOutput, maxProcesses: opts.maxProcesses, memoryBytes: opts.memory };
}

export async function createTarget(name: string, opts: TargetCreateOptions): Promise<void> {
  const review = reviewFromFlags(opts);
  await withClient(async (client, routes) => {
    const body = parseOrUsage(
      CreateTargetRequest,
      {
        name,
        type: opts.type,
        agent: opts.agent,
        limits: limitsFromFlags(limitFlags(opts)),
        ...(opts.network ? { network: opts.network } : {}),
        ...(opts.redact ? { redact: opts.redact } : {}),
        settings: settingsFrom(opts.setting),
        ...(review ? { review } : {}),
      },
      'target',
      { name: 'NAME', type: '--type', agent: '--agent', network: '--network', redact: '--redact', review: '--review' },
    );
    const t = await client.call(routes.createTarget, { body }).catch((err: unknown) => {
      const tooHigh = err instanceof ApiError && err.code === 'FERRY_E_LIMIT_TOO_HIGH' ? limitTooHigh(err.details, limitFlags(opts)) : undefined;
      throw tooHigh ? new UsageError(tooHigh) : err;
    });
    if (opts.json) return printJson(t);
    process.stdout.write(`Created target ${t.name} (${t.type}, ${t.agent === 'hosted' ? 'hosted pool' : 'self-hosted agents'}).\n`);
    if (t.agent === 'self-hosted') process.stdout.write(`Start its agent with a token from: ferry agent token create --target ${t.name}\n`);
    if (t.review && t.review.rule !== 'none') process.stdout.write(`Its tasks wait for review: ${reviewPolicyLine(t.review)}.\n`);
  });
}

function updateBody(opts: TargetUpdateOptions): Record<string, unknown> {
  const settings: Record<string, string | null> = settingsFrom(opts.setting);
  for (const key of opts.unsetSetting ?? []) {
    if (Object.hasOwn(settings, key)) throw new UsageError(`${key} is both set and unset; give one of --setting ${key}=… and --unset-setting ${key}.`);
    settings[key] = null;
  }
  const limits = limitsFromFlags(limitFlags(opts));
  const review = reviewFromFlags(opts);
  const body: Record<string, unknown> = {
    ...(opts.network ? { network: opts.network } : {}),
    ...(opts.redact ? { redact: opts.redact } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
    ...(Object.keys(settings).length > 0 ? { settings } : {}),
    ...(review ? { review } : {}),
  };
  if (Object.keys(body).length === 0) {
    throw new UsageError(
      'Nothing to change: give --setting, --unset-setting, --network, --redact, --review (--approvals, --review-expiry) or a limit (--timeout, --max-output, --max-processes, --memory).',
    );
  }
  return body;
}

export async function updateTarget(name: string, opts: TargetUpdateOptions): Promise<void> {
  await withClient(async (client, routes) => {
    const body = parseOrUsage(UpdateTargetRequest, updateBody(opts), 'target update', { review: '--review' });
    const t = await client.call(routes.updateTarget, { params: { name }, body }).catch((err: unknown) => {
      const tooHigh = err instanceof ApiError && err.code === 'FERRY_E_LIMIT_TOO_HIGH' ? limitTooHigh(err.details, limitFlags(opts)) : undefined;
      throw tooHigh ? new UsageError(tooHigh) : err;
    });
    if (opts.json) return printJson(t);
    process.stdout.write(`Updated target ${t.name}.\n`);
  });
}

/** Settings as `KEY=VALUE` lines for `target show`: in clear, they are not secrets. */
function settingLines(t: Target): [string, string][] {
  const entries = Object.entries(t.settings).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return [['Settings', '(none)']];
  return entries.map(([k, v]) => ['Setting', `${k}=${v}`]);
}

export async function listTargets(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { targets } = await client.call(routes.listTargets);
    if (opts.json) return printJson(targets);
    printTable(
      ['NAME', 'TYPE', 'AGENT', 'NETWORK', 'AGENTS ONLINE', 'CREATED'],
      targets.map((t) => [t.name, t.type, t.agent, t.network, String(t.agentsOnline), ago(t.createdAt)]),
    );
  });
}

export async function showTarget(name: string, opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const t = await client.call(routes.getTarget, { params: { name } });
    if (opts.json) return printJson(t);
    printFields([
      ['Name', t.name],
      ['Type', t.type],
      ['Agent', t.agent],
      ['Network', t.network],
      ['Redaction', t.redact],
      ['Sealing key', t.keyId ?? '(none yet)'],
      ['Key held by', keyHoldersLine(t)],
      ['Timeout', formatDuration(t.limits.timeoutSeconds)],
      ['Max output', formatSize(t.limits.maxOutputBytes)],
      ['Max processes', String(t.limits.maxProcesses)],
      ['Memory', formatSize(t.limits.memoryBytes)],
      ...settingLines(t),
      ['Review', reviewPolicyLine(t.review)],
      ['Agents online', String(t.agentsOnline)],
      ['Created', t.createdAt],
      ['Id', t.id],
    ]);
  });
}

/** Who can open the target's secrets; says so plainly when nobody can. */
function keyHoldersLine(t: Target): string {
  if (!t.keyId) return '-';
  const holders = t.keyHolders.map((h) => `${h.name} (${h.id}${h.online ? '' : ', offline'})`).join(', ');
  const line =
    holders || `no agent holds the key: its secrets cannot be opened (if no agent that has it is left: ferry target rotate-key ${t.name} --discard-secrets)`;
  return t.keyRotationPending ? `${line}; rotation pending` : line;
}

/** Asks for a rotation and waits until an agent holding the key has done it (the key id changes). */
export async function rotateTargetKey(name: string, opts: { wait: string; discardSecrets?: boolean; json?: boolean }): Promise<void> {
  const waitSeconds = parseDurationSeconds(opts.wait);
  if (waitSeconds === undefined || !(waitSeconds > 0)) throw new UsageError(`--wait ${opts.wait} is not a duration; use e.g. 30s or 5m.`);
  await withClient(async (client, routes) => {
    const discard = !!opts.discardSecrets;
    const before = await client.call(routes.rotateTargetKey, { params: { name }, query: { discardSecrets: discard ? 'true' : 'false' } });
    process.stderr.write(
      discard
        ? `Dropped key ${before.keyId ?? '?'} of ${name} and its secrets; waiting for an agent of ${name} to make a new key…\n`
        : `Asked an agent holding key ${before.keyId ?? '?'} of ${name} to rotate it…\n`,
    );
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      const t = await client.call(routes.getTarget, { params: { name } });
      if (!t.keyRotationPending && t.keyId !== null && t.keyId !== before.keyId) {
        if (opts.json) return printJson(t);
        process.stdout.write(
          discard
            ? `New key of ${name}: ${t.keyId}. Its secrets were deleted: set them again with ferry secret set ${name} NAME.\n`
            : `Rotated the key of ${name}: ${before.keyId ?? '?'} → ${t.keyId}; every secret is sealed with the new key.\n`,
        );
        return;
      }
      if (Date.now() >= deadline) {
        process.stderr.write(
          discard
            ? `ferry: no agent of ${name} made a new key within ${opts.wait}; one does when it next connects. Check with: ferry target show ${name}\n`
            : `ferry: no agent holding the key of ${name} rotated it within ${opts.wait} (key holders online: ${t.keyHolders.filter((h) => h.online).length}). ` +
                `The request stays pending: an agent holding the key does it when it next connects. Check with: ferry target show ${name}\n`,
        );
        process.exitCode = 1;
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  });
}

export async function deleteTarget(name: string): Promise<void> {
  await withClient(async (client, routes) => {
    await client.call(routes.deleteTarget, { params: { name } });
    process.stdout.write(`Deleted target ${name}.\n`);
  });
}
