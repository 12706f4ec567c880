/**
 * One configuration loader for server, agent and CLI: schema → sources → validate → freeze.
 * Precedence: flags > environment (`FERRY_*`) > config file > schema defaults.
 * Unknown keys in the file are errors; so are malformed values from any source.
 *
 * Browser-safe: the caller reads the config file (Node's `fs` lives with the callers) and
 * passes its text here.
 */
import { z } from 'zod';

export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

export type EnvLike = Readonly<Record<string, string | undefined>>;

export interface ConfigSources {
  /** Values from command-line flags, already keyed by config key; undefined means "not given". */
  flags?: Record<string, unknown>;
  /** Usually process.env. Each key `fooBar` is read from `FERRY_FOO_BAR`. */
  env?: EnvLike;
  /** A JSON config file already read by the caller: its name (for messages) and its text. */
  file?: { name: string; text: string } | undefined;
}

/**
 * A config file named by a flag or variable, read by the caller's `read` (Node's readFileSync,
 * say): it must exist, because a typo should not silently mean "defaults".
 */
export function configFile(name: string | undefined, read: (name: string) => string): ConfigSources['file'] {
  if (!name) return undefined;
  try {
    return { name, text: read(name) };
  } catch (err) {
    throw new ConfigError(`cannot read config file ${name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

export function envName(key: string): string {
  return 'FERRY_' + key.replace(/([A-Z])/g, '_$1').toUpperCase();
}

function parseFileLayer(file: ConfigSources['file']): Record<string, unknown> {
  if (!file) return {};
  try {
    const parsed: unknown = JSON.parse(file.text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`config file ${file.name} is not a JSON object: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function readEnvLayer(keys: readonly string[], env: EnvLike | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!env) return out;
  for (const key of keys) {
    const value = env[envName(key)];
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

function definedOnly(values: Record<string, unknown> | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values ?? {}).filter(([, v]) => v !== undefined));
}

/**
 * Loads configuration for a `z.object` schema. Environment values arrive as strings, so
 * numeric and boolean fields should use `z.coerce` or a preprocess in the schema.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, sources: ConfigSources): Readonly<z.infer<S>> {
  const keys = Object.keys(schema.shape);
  const merged = {
    ...parseFileLayer(sources.file),
    ...readEnvLayer(keys, sources.env),
    ...definedOnly(sources.flags),
  };
  const result = schema.strict().safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues.map((i) => {
      const key = i.path.join('.') || '(config)';
      return `${key}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return Object.freeze(result.data) as Readonly<z.infer<S>>;
}
