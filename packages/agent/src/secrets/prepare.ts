/**
 * Opens a task's secrets in memory for one run. Any failure is a reason to end the task as
 * `error` before it starts: a missing key, a value sealed for another target or name.
 */
import { MIN_MASKED_SECRET_LENGTH, isReservedSecretName, type Assignment } from '@ferry/protocol';
import { openSecret, SecretOpenError } from './envelope.js';
import type { KeyStore } from './key-store.js';

export class SecretPreparationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretPreparationError';
  }
}

export interface PreparedSecrets {
  env: Map<string, string>;
  /** Names of values too short to mask (they are still given to the task). */
  unmasked: string[];
}

export function prepareSecrets(task: Assignment, keys: KeyStore): PreparedSecrets {
  const env = new Map<string, string>();
  const unmasked: string[] = [];
  if (task.secrets.length === 0) return { env, unmasked };
  for (const { name, sealed } of task.secrets) {
    if (isReservedSecretName(name)) throw new SecretPreparationError(`secret ${name} has a reserved name`);
    // By the value's key id: a task claimed just before a rotation still opens with the key it was sealed for.
    const key = keys.find(task.target.id, sealed.kid);
    if (!key) {
      throw new SecretPreparationError(
        `this agent does not hold key ${sealed.kid} of target ${task.target.name}; an agent that holds it hands it over (ferry target show ${task.target.name} lists them)`,
      );
    }
    let value: string;
    try {
      value = openSecret(key.key, { orgId: task.orgId, targetId: task.target.id, name, kid: key.kid }, sealed).toString('utf8');
    } catch (err) {
      if (err instanceof SecretOpenError) throw new SecretPreparationError(`secret ${name} was refused: ${err.message}`);
      throw err;
    }
    if (value.includes('\0')) throw new SecretPreparationError(`secret ${name} contains a NUL byte and cannot be an environment variable`);
    env.set(name, value);
    if (value.length < MIN_MASKED_SECRET_LENGTH) unmasked.push(name);
  }
  return { env, unmasked };
}
