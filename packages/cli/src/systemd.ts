/**
 * The systemd units `ferry agent install` and `ferry server install` write. Each directive
 * below is either hardening or says why it is left out; `systemd-analyze verify` checks both
 * units in the tests, and docs/deploy.md states their `systemd-analyze security` exposure.
 *
 * The agent runs as root, because its sandbox (bubblewrap) makes namespaces, mounts, a cgroup
 * per task and gives each task its own uid: so no RestrictNamespaces, no ProtectControlGroups,
 * no CapabilityBoundingSet, no PrivateUsers. What the sandbox does not need is taken away.
 * The server needs nothing of that: it runs as a dynamic unprivileged user with no
 * capabilities at all, and without its embedded agent (whose sandbox would need root); a
 * hosted agent is installed beside it with `ferry agent install`.
 */
import { AGENT_PROCESS } from '@ferry/agent/flags';

/** A systemd "word": quoted when it has anything but safe characters. */
function word(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `"${s.replace(/(["\\])/g, '\\$1').replace(/%/g, '%%')}"`;
}

function execLine(argv: readonly string[]): string {
  return argv.map(word).join(' ');
}

/**
 * What the agent's sandbox uses, and no more: bubblewrap makes namespaces and mounts
 * (SYS_ADMIN, SYS_CHROOT, NET_ADMIN for a task's loopback), switches to the task's uid
 * (SETUID, SETGID, SETPCAP), prepares its folders and cgroup (CHOWN, DAC_*, FOWNER, FSETID),
 * sets its limits (SYS_RESOURCE) and kills what is left of it (KILL). A test runs sandboxed
 * tasks with only this bounding set (under setpriv). Gone: ptrace, raw I/O, BPF, modules,
 * raw sockets, mknod, the clock, audit, reboot and the rest.
 */
export const AGENT_CAPABILITIES = [
  'CAP_SYS_ADMIN',
  'CAP_SYS_CHROOT',
  'CAP_NET_ADMIN',
  'CAP_SETUID',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_SYS_RESOURCE',
  'CAP_KILL',
] as const;

const COMMON_HARDENING = [
  'NoNewPrivileges=yes',
  'ProtectSystem=strict',
  'PrivateTmp=yes',
  'ProtectHome=yes',
  'ProtectKernelModules=yes',
  'ProtectKernelLogs=yes',
  'ProtectClock=yes',
  'ProtectHostname=yes',
  'RestrictRealtime=yes',
  'RestrictSUIDSGID=yes',
  'LockPersonality=yes',
  'SystemCallArchitectures=native',
  'UMask=0077',
  // MemoryDenyWriteExecute is left out: Node's JIT compiler writes executable memory.
];

export interface AgentUnitOptions {
  /** argv of `ferry agent start`, without its flags. */
  command: readonly string[];
  dataDir: string;
  envFile: string;
}

export function agentUnit(o: AgentUnitOptions): string {
  return `# Written by \`ferry agent install\`; \`ferry agent uninstall\` removes it.
[Unit]
Description=Ferry agent (runs tasks in bubblewrap sandboxes; dials out only)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
# The join token (used once, to register) is in this file, mode 0600; afterwards the
# agent's credential is in its data folder, mode 0600.
EnvironmentFile=${o.envFile}
Environment=FERRY_LOG_FORMAT=json
# The agent's process settings, as every agent launcher sets them (AGENT_PROCESS in
# packages/agent/src/flags.ts): V8's young generation capped, and glibc's malloc giving
# output buffers back when they are freed (bench/README.md, the agent's memory after work).
Environment=NODE_OPTIONS=${AGENT_PROCESS.nodeArgs.join(' ')}
Environment=GLIBC_TUNABLES=${AGENT_PROCESS.glibcTunables}
ExecStart=${execLine([...o.command, '--data-dir', o.dataDir])}
# SIGTERM drains: running tasks finish (a second SIGTERM would cancel them). After this
# long, systemd kills what is left, and those tasks end as lost.
KillMode=mixed
TimeoutStopSec=15min
Restart=on-failure
RestartSec=5s

# Root, for the sandbox (see packages/cli/src/systemd.ts); everything else is taken away.
${COMMON_HARDENING.join('\n')}
ReadWritePaths=${word(o.dataDir)} /sys/fs/cgroup
# /run/ferry/task-uids: the uid blocks agents on this host share.
RuntimeDirectory=ferry
RuntimeDirectoryPreserve=yes
# AF_NETLINK: the sandbox brings up loopback in a task's own network namespace.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
CapabilityBoundingSet=${AGENT_CAPABILITIES.join(' ')}
# Tasks have their own seccomp filter too; these groups neither the agent nor bubblewrap uses.
SystemCallFilter=~@clock @cpu-emulation @debug @module @obsolete @raw-io @reboot @swap
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`;
}

export interface ServerUnitOptions {
  /** argv of `ferry server`, without its flags. */
  command: readonly string[];
  listen: string;
  publicUrl?: string | undefined;
  envFile: string;
}

export function serverUnit(o: ServerUnitOptions): string {
  const flags = ['--data-dir', '/var/lib/ferry', '--listen', o.listen, '--no-embedded-agent', ...(o.publicUrl ? ['--public-url', o.publicUrl] : [])];
  return `# Written by \`ferry server install\`; \`ferry server uninstall\` removes it.
[Unit]
Description=Ferry control plane (HTTPS API)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
# Optional FERRY_* settings (docs/configuration.md), e.g. FERRY_METRICS_TOKEN.
EnvironmentFile=-${o.envFile}
Environment=FERRY_LOG_FORMAT=json
ExecStart=${execLine([...o.command, ...flags])}
Restart=on-failure
RestartSec=5s

# An unprivileged user made for the service; its data in /var/lib/ferry (the admin token:
# /var/lib/ferry/admin-token, readable by root).
DynamicUser=yes
StateDirectory=ferry
StateDirectoryMode=0700
${COMMON_HARDENING.join('\n')}
CapabilityBoundingSet=
AmbientCapabilities=
PrivateDevices=yes
PrivateUsers=yes
ProtectKernelTunables=yes
ProtectControlGroups=yes
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=yes
RemoveIPC=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
DevicePolicy=closed

[Install]
WantedBy=multi-user.target
`;
}
