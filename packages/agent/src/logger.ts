/**
 * The agent's logger. Agents listen on no port, so their logs are how an operator sees them:
 * JSON lines for collectors (journald, a container runtime, a log shipper), or readable lines
 * (pino-pretty) for a person at a terminal.
 */
import pino, { type Logger } from 'pino';

export async function createLogger(level: string, format: 'json' | 'pretty' | undefined): Promise<Logger> {
  // Default: pretty when stderr (where logs go) is a terminal, JSON otherwise.
  if ((format ?? (process.stderr.isTTY ? 'pretty' : 'json')) === 'json') return pino({ level, base: { component: 'agent' } }, pino.destination(2));
  // Loaded only here: a service logging JSON does not hold pino-pretty (and its helpers) in memory.
  const { default: pretty } = await import('pino-pretty');
  // Synchronous, in this thread: a worker-thread transport could lose the last lines on exit.
  const stream = pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  return pino({ level, base: { component: 'agent' } }, stream);
}
