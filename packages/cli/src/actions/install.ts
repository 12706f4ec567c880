/**
 * `ferry agent install|uninstall` and `ferry server install|uninstall`: a systemd service on a
 * Linux host (units: systemd.ts). Install writes the unit (0644) and, for the agent, the join
 * token in an environment file (0600, in a 0700 folder), then enables and starts the service;
 * uninstall stops and disables it and removes what install wrote (the data stays unless
 * --purge). With --root DIR, everything is written under DIR and systemctl is not run (as
 * `systemctl --root` does): for images and for checking the units.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { DEFAULT_AGENT_DATA_DIR, decodeJoinToken } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { agentUnit, serverUnit } from '../systemd.js';

const AGENT_UNIT = 'ferry-agent.service';
const SERVER_UNIT = 'ferry-server.service';

interface Where {
  root?: string;
}

function under(where: Where, path: string): string {
  return where.root ? join(where.root, path) : path;
}

function paths(where: Where, unit: string, env: string): { unit: string; env: string; shownEnv: string } {
  return { unit: under(where, `/etc/systemd/system/${unit}`), env: under(where, `/etc/ferry/${env}`), shownEnv: `/etc/ferry/${env}` };
}

function requireRoot(where: Where): void {
  if (!where.root && process.getuid?.() !== 0) throw new UsageError('Installing a service writes /etc/systemd/system and /etc/ferry: run it as root (sudo).');
}

/**
 * This very `ferry`, as the service should start it: the Node binary and the CLI's real path.
 * The units hide /home and /root (ProtectHome), so a `ferry` installed there could not start
 * (not checked with --root, where the files are for another system or for checking).
 */
function selfCommand(where: Where): string[] {
  const script = process.argv[1];
  if (!script) throw new Error('internal: no script path');
  const command = [process.execPath, realpathSync(script)];
  const hidden = command.find((p) => /^\/(home|root|run\/user)(\/|$)/.test(p));
  if (hidden && !where.root)
    throw new UsageError(
      `${hidden} is under /home or /root, which the service cannot see. Install Ferry system-wide first (sudo npm install -g …), then run this again.`,
    );
  return command;
}

function systemctl(where: Where, ...args: string[]): void {
  if (where.root) return;
  try {
    execFileSync('systemctl', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    throw new UsageError(`systemctl ${args.join(' ')} failed (${(err as Error).message.split('\n')[0] ?? ''}). Is this host run by systemd?`);
  }
}

function writeEnvFile(file: string, vars: Record<string, string>): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const text = Object.entries(vars)
    .map(([k, v]) => `${k}=${v}\n`)
    .join('');
  writeFileSync(file, text, { mode: 0o600 });
}

function writeUnit(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text, { mode: 0o644 });
}

export interface AgentInstallOptions extends Where {
  joinToken?: string;
  dataDir?: string;
  name?: string;
  concurrency?: string;
  executor?: string;
}

export function installAgent(opts: AgentInstallOptions): void {
  requireRoot(opts);
  const token = opts.joinToken ?? process.env.FERRY_JOIN_TOKEN;
  if (!token) throw new UsageError('Give --join-token TOKEN (from `ferry agent token create`).');
  if (!decodeJoinToken(token)) throw new UsageError('That is not a join token: copy the whole line `ferry agent token create` printed.');
  const dataDir = opts.dataDir ?? DEFAULT_AGENT_DATA_DIR;
  if (!isAbsolute(dataDir) || !/^[A-Za-z0-9_@%+=:,./-]+$/.test(dataDir))
    throw new UsageError(`--data-dir must be an absolute path without spaces or quotes for a service, not ${dataDir}.`);
  const extra = [
    ...(opts.name ? ['--name', opts.name] : []),
    ...(opts.concurrency ? ['--concurrency', opts.concurrency] : []),
    ...(opts.executor ? ['--executor', opts.executor] : []),
  ];
  const p = paths(opts, AGENT_UNIT, 'agent.env');
  mkdirSync(under(opts, dataDir), { recursive: true, mode: 0o700 });
  writeEnvFile(p.env, { FERRY_JOIN_TOKEN: token });
  writeUnit(p.unit, agentUnit({ command: [...selfCommand(opts), 'agent', 'start', ...extra], dataDir, envFile: p.shownEnv }));
  systemctl(opts, 'daemon-reload');
  systemctl(opts, 'enable', '--now', AGENT_UNIT);
  process.stdout.write(`Installed ${p.unit}${opts.root ? '' : ' and started it'}; the join token is in ${p.env} (0600).\n`);
  if (!opts.root) process.stdout.write(`Follow it with: journalctl -u ${AGENT_UNIT} -f\n`);
}

/** The data folder a unit was written with (its ExecStart's --data-dir). */
function dataDirOf(unitFile: string): string | undefined {
  const exec = /^ExecStart=.*--data-dir (\S+)/m.exec(readFileSync(unitFile, 'utf8'));
  return exec?.[1];
}

/** `keepEnv`: the env file is the operator's (server settings), removed only with --purge. */
function uninstall(opts: Where & { purge?: boolean }, unit: string, env: string, keepEnv = false): void {
  requireRoot(opts);
  const p = paths(opts, unit, env);
  if (!existsSync(p.unit)) throw new UsageError(`${p.unit} does not exist: nothing to uninstall.`);
  const dataDir = dataDirOf(p.unit);
  systemctl(opts, 'disable', '--now', unit);
  rmSync(p.unit, { force: true });
  if (!keepEnv || opts.purge) rmSync(p.env, { force: true });
  systemctl(opts, 'daemon-reload');
  if (opts.purge && dataDir) rmSync(under(opts, dataDir), { recursive: true, force: true });
  const kept = !opts.purge && dataDir ? ` Its data is kept in ${dataDir} (--purge removes it).` : '';
  process.stdout.write(`Removed ${unit}.${kept}\n`);
}

export function uninstallAgent(opts: Where & { purge?: boolean }): void {
  uninstall(opts, AGENT_UNIT, 'agent.env');
}

export function installServer(opts: Where & { listen?: string; publicUrl?: string }): void {
  requireRoot(opts);
  const p = paths(opts, SERVER_UNIT, 'server.env');
  const listen = opts.listen ?? '0.0.0.0:8443';
  writeUnit(p.unit, serverUnit({ command: [...selfCommand(opts), 'server'], listen, publicUrl: opts.publicUrl, envFile: p.shownEnv }));
  systemctl(opts, 'daemon-reload');
  systemctl(opts, 'enable', '--now', SERVER_UNIT);
  process.stdout.write(
    `Installed ${p.unit}${opts.root ? '' : ' and started it'}. The admin token is /var/lib/ferry/admin-token; settings go in ${p.shownEnv}.\n` +
      'The server runs without an embedded agent: install a hosted agent beside it with\n' +
      '  ferry agent install --join-token "$(ferry agent token create --hosted)"\n',
  );
}

export function uninstallServer(opts: Where & { purge?: boolean }): void {
  uninstall(opts, SERVER_UNIT, 'server.env', true);
}
