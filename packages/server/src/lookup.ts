/**
 * Finding what a request names. User lookups are scoped by organization: an id or name from
 * another organization is "not found", never "forbidden". Agent lookups find only what the
 * agent holds, so an agent can never touch a task it does not hold, whatever ids it sends.
 */
import { FerryError, TargetName, TaskId } from '@ferry/protocol';
import type { AgentRow, Store, TargetRow, TaskRow } from './store/types.js';

export async function findTarget(store: Store, orgId: string, name: string): Promise<TargetRow> {
  const parsed = TargetName.safeParse(name);
  const target = parsed.success ? await store.getTargetByName(orgId, parsed.data) : undefined;
  if (!target) throw new FerryError('FERRY_E_TARGET_NOT_FOUND', `No target named "${name}". \`ferry target list\` shows the targets.`);
  return target;
}

export async function findTask(store: Store, orgId: string, id: string): Promise<TaskRow> {
  const task = TaskId.safeParse(id).success ? await store.getTask(orgId, id) : undefined;
  if (!task) throw new FerryError('FERRY_E_TASK_NOT_FOUND', `No task with id "${id}". \`ferry task list\` shows the tasks.`);
  return task;
}

/** A task id in an agent's request path; a malformed one is "not found" like a missing one. */
export function parseTaskId(id: string): string {
  if (!TaskId.safeParse(id).success) throw new FerryError('FERRY_E_TASK_NOT_FOUND', `"${id}" is not a task id.`);
  return id;
}

export function leaseLost(agent: AgentRow, taskId: string): FerryError {
  return new FerryError('FERRY_E_LEASE_LOST', `Agent ${agent.name} does not hold task ${taskId}.`);
}

/** The running task `agent` holds, or FERRY_E_LEASE_LOST. */
export async function findHeldTask(store: Store, agent: AgentRow, taskId: string): Promise<TaskRow> {
  const task = await store.getTaskForAgent(taskId, agent.id);
  if (!task || task.status !== 'running') throw leaseLost(agent, taskId);
  return task;
}
