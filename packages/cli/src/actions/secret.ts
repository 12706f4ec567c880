import { ApiError, sealSecret, sleep, type FerryClient } from '@ferry/client';
import { MIN_MASKED_SECRET_LENGTH, Routes, SECRET_NAME_PATTERN, type TargetKey } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { ago, printJson, printTable } from '../format.js';
import { readHiddenOrStdin } from '../prompt.js';
import { withClient } from '../run-command.js';

/** The target's public sealing key; a new hosted target gets one within moments, so wait a little. */
async function targetKey(client: FerryClient, target: string): Promise<TargetKey> {
  const deadline = Date.now() + 20_000;
  for (let announced = false; ; announced = true) {
    try {
      return await client.call(Routes.getTargetKey, { params: { name: target } });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'FERRY_E_TARGET_NO_KEY') || Date.now() > deadline) throw err;
      if (!announced) process.stderr.write(`ferry: waiting for target ${target}'s agent to publish its sealing key…\n`);
      await sleep(500);
    }
  }
}

export async function setSecret(target: string, key: string, value: string | undefined): Promise<void> {
  // VALUE is accepted by the parser only to be refused with a reason: silently ignoring it (and
  // prompting) would leave the user believing the value on the command line was used.
  if (value !== undefined)
    throw new UsageError(
      `ferry secret set takes no value on the command line: it would stay in your shell history and show in \`ps\` to everyone on this machine. ` +
        `Run it without the value and type it at the hidden prompt, or pipe it: printf %s "$VALUE" | ferry secret set ${target} ${key}`,
    );
  if (!SECRET_NAME_PATTERN.test(key)) throw new UsageError(`"${key}" is not a secret name: use upper-case letters, digits and _ (e.g. DB_PASSWORD).`);
  await withClient(async (client, routes) => {
    const tk = await targetKey(client, target);
    const value = await readHiddenOrStdin(`Value for ${key} (not shown):`);
    if (value.length === 0) throw new UsageError('The value is empty.');
    if (value.length < MIN_MASKED_SECRET_LENGTH) {
      process.stderr.write(`ferry: warning: ${key} is shorter than ${MIN_MASKED_SECRET_LENGTH} characters, so it will NOT be masked in task output.\n`);
    }
    const sealed = await sealSecret(tk.publicKeyPem, { orgId: tk.orgId, targetId: tk.targetId, name: key }, value);
    const info = await client.call(routes.setSecret, { params: { name: target, secret: key }, body: { sealed } });
    process.stdout.write(`Set ${info.name} on ${target} (sealed with key ${info.kid}).\n`);
  });
}

export async function listSecrets(target: string, opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { secrets } = await client.call(routes.listSecrets, { params: { name: target } });
    if (opts.json) return printJson(secrets);
    printTable(
      ['NAME', 'SET BY', 'SET', 'KEY'],
      secrets.map((s) => [s.name, s.setBy, ago(s.setAt), s.kid]),
    );
  });
}

export async function deleteSecret(target: string, key: string): Promise<void> {
  await withClient(async (client, routes) => {
    await client.call(routes.deleteSecret, { params: { name: target, secret: key } });
    process.stdout.write(`Deleted ${key} from ${target}.\n`);
  });
}
