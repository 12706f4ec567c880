/**
 * Checks on what a task gets besides its script (stdin, arguments, plain environment) that
 * need the target: the schema (protocol task-input.ts) has checked shapes and sizes already.
 */
import { Buffer } from 'node:buffer';
import { FerryError, base64Decode, type CreateTaskRequest, type TargetType } from '@ferry/protocol';
import type { Store, TargetRow, TaskRow } from '../store/types.js';

/** Types whose command takes no arguments of the user's: SQL goes to a client reading the script as a file. */
const NO_ARGS: ReadonlySet<TargetType> = new Set(['postgres', 'postgres-csv', 'mysql', 'mysql-csv']);

export async function taskInputFor(store: Store, target: TargetRow, request: CreateTaskRequest): Promise<Pick<TaskRow, 'stdin' | 'args' | 'env'>> {
  const args = request.args ?? [];
  const env = request.env ?? {};
  if (args.length > 0 && NO_ARGS.has(target.type))
    throw new FerryError(
      'FERRY_E_BAD_REQUEST',
      `Target ${target.name} is of type ${target.type}, whose SQL script takes no arguments; pass values with --env instead.`,
    );
  if (Object.keys(env).length > 0) {
    // Secrets would win over a variable of the same name; refusing says so instead of a silent surprise.
    const secrets = new Set((await store.listSecrets(target.id)).map((s) => s.name));
    const clash = Object.keys(env).filter((name) => secrets.has(name));
    if (clash.length > 0)
      throw new FerryError(
        'FERRY_E_TASK_ENV_REFUSED',
        `--env ${clash.join(', ')}: target ${target.name} has a secret of that name, and secrets win. Choose another name, or change the secret with \`ferry secret set\`.`,
        { details: { names: clash } },
      );
  }
  const stdin = request.stdin ? Buffer.from(base64Decode(request.stdin)) : null;
  return { stdin: stdin && stdin.length > 0 ? stdin : null, args, env };
}
