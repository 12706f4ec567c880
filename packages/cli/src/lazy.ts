/**
 * Commands are defined eagerly (names, flags, help: cheap) and implemented lazily: an action's
 * module, and with it zod, the schemas and the HTTPS client, loads only when that command runs.
 * `ferry --help` therefore loads commander and nothing else.
 */
type ActionModule = Record<string, unknown>;

/** A commander action that imports `load()` and calls its export `name` with the action's arguments. */
export function lazyAction(load: () => Promise<ActionModule>, name: string): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const mod = await load();
    const action = mod[name];
    if (typeof action !== 'function') throw new Error(`internal: action ${name} is missing`);
    await (action as (...a: unknown[]) => Promise<void>)(...args);
  };
}
