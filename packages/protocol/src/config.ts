/**
 * One configuration loader for server, agent and CLI: schema → sources → validate → freeze.
 * Precedence: flags > environment (`FERRY_*`) > config file > schema defaults.
 * Unknown keys in the file are errors; so are malformed values from any source.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** Values from command-line flags, already keyed by config key; undefined means "not given". */
  flags?: Record<string, unknown>;
  /** Usually process.env. Each key `fooBar` is read from `FERRY_FOO_BAR`. */
  env?: NodeJS.ProcessEnv;
  /** A JSON config file; missing is fine when `fileOptional`. */
  file?: string | undefined;
  fileOptional?: boolean;
}

export function envName(key: string): string {
  return 'FERRY_' + key.replace(/([A-Z])/g, '_$1').toUpperCase();
}

function readFileLayer(file: string | undefined, optional: boolean): Record<string, unknown> {
  if (!file) return {};
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`config file ${file} is not a JSON object: ${(err as Error).message}`, { cause: err });
  }
}

function readEnvLayer(keys: readonly string[], env: NodeJS.ProcessEnv | undefined): Record<string, unknown> {
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
  const fileLayer = readFileLayer(sources.file, sources.fileOptional ?? true);
  const merged = {
    ...fileLayer,
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
