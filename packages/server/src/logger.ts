/**
 * The server's logger: JSON lines for collectors, or readable lines (pino-pretty) for a person
 * at a terminal. Logs go to stderr; stdout carries the banner only.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';

/** The format asked for, else pretty when stderr is a terminal and JSON otherwise (a pipe, a file, journald). */
export function resolveLogFormat(format: LogFormat | undefined): LogFormat {
  return format ?? (process.stderr.isTTY ? 'pretty' : 'json');
}

export function createLogger(level: string, format: LogFormat, component: string): Logger {
  if (format === 'json') return pino({ level, base: { component } }, pino.destination(2));
  // Synchronous, in this thread: a worker-thread transport could lose the last lines on exit.
  const stream = pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  return pino({ level, base: { component } }, stream);
}
