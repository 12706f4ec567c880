import type { Command } from 'commander';
import { MIN_MASKED_SECRET_LENGTH, SECRET_NAME_PATTERN, type SecretInfo, type TargetKey } from '@ferry/protocol';
import { ApiError, sealSecret, type ApiClient } from '@ferry/agent';
import { UsageError } from '../errors.js';
import { ago, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';

/** Reads a value without echoing it (terminal) or from stdin (pipe; one trailing newline dropped). */
async function readSecretValue(name: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  process.stderr.write(`Value for ${name} (not shown): `);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new UsageError('cancelled'));
          return;
        }
        value = ch === '\u007f' || ch === '\b' ? value.slice(0, -1) : value + ch;
      }
    };
    const done = (): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

/** The target's public sealing key; a new hosted target gets one within moments, so wait a little. */
async function targetKey(client: ApiClient, target: string): Promise<TargetKey> {
  const deadline = Date.now() + 20_000;
  for (let announced = false; ; ) {
    try {
      return await client.json<TargetKey>('GET', `/v1/targets/${encodeURIComponent(target)}/key`);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'FERRY_E_TARGET_NO_KEY') || Date.now() > deadline) throw err;
      if (!announced) process.stderr.write(`ferry: waiting for target ${target}'s agent to publish its sealing key…\n`);
      announced = true;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export function registerSecretCommands(program: Command): void {
  const secret = program.command('secret').description('write-only secrets, sealed on this machine for the target\'s agents');

  secret.command('set <target> <key>')
    .description('set a secret from a hidden prompt or stdin (never from the command line)')
    .action(async (target: string, key: string) => withClient(async (client) => {
      if (!SECRET_NAME_PATTERN.test(key)) throw new UsageError(`"${key}" is not a secret name: use upper-case letters, digits and _ (e.g. DB_PASSWORD).`);
      const tk = await targetKey(client, target);
      const value = await readSecretValue(key);
      if (value.length === 0) throw new UsageError('The value is empty.');
      if (value.length < MIN_MASKED_SECRET_LENGTH) {
        process.stderr.write(`ferry: warning: ${key} is shorter than ${MIN_MASKED_SECRET_LENGTH} characters, so it will NOT be masked in task output.\n`);
      }
      const sealed = sealSecret(tk.publicKeyPem, { orgId: tk.orgId, targetId: tk.targetId, name: key }, Buffer.from(value, 'utf8'));
      const info = await client.json<SecretInfo>('PUT', `/v1/targets/${encodeURIComponent(target)}/secrets/${key}`, { sealed });
      process.stdout.write(`Set ${info.name} on ${target} (sealed with key ${info.kid}).\n`);
    }));

  secret.command('list <target>')
    .description('list a target\'s secrets: names, who set them and when (never values)')
    .option('--json', 'print JSON')
    .action(async (target: string, opts: { json?: boolean }) => withClient(async (client) => {
      const { secrets } = await client.json<{ secrets: SecretInfo[] }>('GET', `/v1/targets/${encodeURIComponent(target)}/secrets`);
      if (opts.json) return printJson(secrets);
      printTable(['NAME', 'SET BY', 'SET', 'KEY'], secrets.map((s) => [s.name, s.setBy, ago(s.setAt), s.kid]));
    }));

  secret.command('delete <target> <key>')
    .description('delete a secret')
    .action(async (target: string, key: string) => withClient(async (client) => {
      await client.json('DELETE', `/v1/targets/${encodeURIComponent(target)}/secrets/${encodeURIComponent(key)}`);
      process.stdout.write(`Deleted ${key} from ${target}.\n`);
    }));
}
