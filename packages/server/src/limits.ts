/**
 * Limits resolve in one place: a task's own timeout, else its target's, else the server's
 * default; none above the server-wide maximum.
 */
import { FerryError, type ResolvedLimits, type TargetLimits } from '@ferry/protocol';
import type { ServerConfig } from './config.js';

function serverMaxima(config: ServerConfig): ResolvedLimits {
  return {
    timeoutSeconds: config.maxTimeoutSeconds,
    maxOutputBytes: config.maxOutputBytes,
    maxProcesses: config.maxProcesses,
    memoryBytes: config.maxMemoryBytes,
  };
}

export function resolveLimits(config: ServerConfig, limits: TargetLimits): ResolvedLimits {
  return {
    timeoutSeconds: limits.timeoutSeconds ?? config.defaultTimeoutSeconds,
    maxOutputBytes: limits.maxOutputBytes ?? config.defaultMaxOutputBytes,
    maxProcesses: limits.maxProcesses ?? config.defaultMaxProcesses,
    memoryBytes: limits.memoryBytes ?? config.defaultMemoryBytes,
  };
}

/** Refuses limits above the server's maxima with a message naming the limit and the maximum. */
export function checkLimits(config: ServerConfig, limits: Partial<ResolvedLimits>): void {
  const maxima = serverMaxima(config);
  for (const key of Object.keys(maxima) as (keyof ResolvedLimits)[]) {
    const value = limits[key];
    if (value !== undefined && value > maxima[key]) {
      throw new FerryError('FERRY_E_LIMIT_TOO_HIGH', `${key} ${value} is above this server's maximum of ${maxima[key]}.`, {
        details: { limit: key, maximum: maxima[key] },
      });
    }
  }
}
