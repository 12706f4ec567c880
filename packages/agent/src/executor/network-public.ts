/**
 * `--network public`: a task reaches the internet, and nothing else the agent host can reach.
 *
 * Each sandbox gets a network namespace of its own, made by the agent (as root, so it belongs
 * to the host's user namespace: the task, which has no capabilities, can change none of it):
 *
 *   1. `unshare --net=FILE nft -f -` an empty namespace, held by a bind mount on a file in
 *                                    /run/ferry/netns (writable under the agent's systemd unit),
 *   2.                               and in it an output filter that rejects every packet to a blocked
 *                                    address (below) leaving by any interface but loopback
 *   3. `pasta --netns …`             Debian's passt in pasta mode: a tap interface in the
 *                                    namespace whose TCP, UDP and ICMP flows it re-opens as
 *                                    ordinary sockets of the agent host. `--no-map-gw`: the
 *                                    gateway address is not the host's loopback; `-t/-u/-T/-U
 *                                    none`: no port of the host reaches the task, and no
 *                                    loopback port of the task's reaches the host's
 *
 * bwrap then joins the namespace (nsenter in its wrapper) instead of making an empty one. The
 * filter sits in the output hook, which every locally made IP packet passes, raw ones included
 * (a task could not make those anyway: no CAP_NET_RAW, and ping sockets are off in a new
 * namespace). AF_PACKET would skip it, and needs CAP_NET_RAW too.
 *
 * Blocked: the private, shared, loopback, link-local (cloud metadata included), multicast and
 * reserved ranges of IPv4 and IPv6, the same ranges behind the NAT64 prefix, every address of the
 * agent host, and the control plane's addresses (its URL's host, resolved). The namespace copies
 * the host's own address, so that address is the task's own loopback, not the host.
 *
 * DNS: the task's /etc/resolv.conf names public resolvers (agent setting `publicDns`, default
 * 1.1.1.1 and 8.8.8.8), reached like any public address. The host's resolver (often 127.0.0.53
 * or a private address) is not: it would answer for private names, and it is blocked anyway.
 *
 * pasta runs as root (this passt release cannot join a namespace after dropping to nobody) but
 * keeps only CAP_NET_BIND_SERVICE and CAP_SYS_ADMIN, under its own seccomp filter and in
 * namespaces of its own. It is killed with the sandbox; one left by an agent killed with -9 is
 * found by its pid file and swept by the next agent of that host.
 */
import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TASK_PATH } from './types.js';

/** The namespaces' files, named with this prefix and the agent's pid; pasta's pid files beside them. */
const NETNS_DIR = '/run/ferry/netns';
const PREFIX = 'ferry-pub-';
const COMMAND_TIMEOUT_MS = 10_000;
const CONTROL_PLANE_TTL_MS = 60_000;

const BLOCKED_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
];
const BLOCKED_V6 = ['::/128', '::1/128', '::ffff:0:0/96', '64:ff9b:1::/48', 'fc00::/7', 'fe80::/10', 'fec0::/10', 'ff00::/8'];

const DEFAULT_PUBLIC_DNS = ['1.1.1.1', '8.8.8.8'];

/** `a.b.c.d/n` as the NAT64 well-known prefix 64:ff9b::/96 would carry it. */
function nat64(cidr: string): string {
  const [addr = '', bits = '32'] = cidr.split('/');
  const [a = 0, b = 0, c = 0, d = 0] = addr.split('.').map(Number);
  const hex = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  return `64:ff9b::${hex(a, b)}:${hex(c, d)}/${96 + Number(bits)}`;
}

/** The addresses a public task may not reach, by family; `extra` are single addresses (host, control plane). */
function blockedRanges(extra: readonly string[]): { v4: string[]; v6: string[] } {
  const v4 = [...BLOCKED_V4, ...extra.filter((a) => isIP(a) === 4)];
  const v6 = [...BLOCKED_V6, ...BLOCKED_V4.map(nat64), ...extra.filter((a) => isIP(a) === 6).map((a) => a.replace(/%.*$/, ''))];
  return { v4, v6 };
}

/** Whether `address` is in a range public tasks cannot reach (a resolver there would never answer them). */
export function isBlockedAddress(address: string): boolean {
  // One list per family: Node's BlockList matches every IPv4 address against ::ffff:0:0/96.
  const v6 = isIP(address) === 6;
  const list = new BlockList();
  for (const cidr of v6 ? BLOCKED_V6 : BLOCKED_V4) list.addSubnet(cidr.split('/')[0] ?? '', Number(cidr.split('/')[1]), v6 ? 'ipv6' : 'ipv4');
  return list.check(address, v6 ? 'ipv6' : 'ipv4');
}

/** The namespace's filter: loopback is the task's own; ND keeps IPv6 working; the rest to a blocked address is rejected at once (TCP: connection refused). */
function filterRules(extra: readonly string[]): string {
  const { v4, v6 } = blockedRanges(extra);
  return [
    'table inet ferry {',
    `  set blocked4 { type ipv4_addr; flags interval; auto-merge; elements = { ${v4.join(', ')} } }`,
    `  set blocked6 { type ipv6_addr; flags interval; auto-merge; elements = { ${v6.join(', ')} } }`,
    '  chain output {',
    '    type filter hook output priority 0; policy accept;',
    '    oif "lo" accept',
    '    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept',
    // A TCP reset fails a connect() at once; an ICMP error would only after the SYN's retry (1 s).
    '    ip daddr @blocked4 meta l4proto tcp reject with tcp reset',
    '    ip6 daddr @blocked6 meta l4proto tcp reject with tcp reset',
    '    ip daddr @blocked4 reject with icmpx type admin-prohibited',
    '    ip6 daddr @blocked6 reject with icmpx type admin-prohibited',
    '  }',
    '}',
    '',
  ].join('\n');
}

interface NetTools {
  unshare: string;
  umount: string;
  nft: string;
  nsenter: string;
  pasta: string;
}

async function findTool(name: string): Promise<string | undefined> {
  for (const dir of TASK_PATH.split(':')) {
    const file = join(dir, name);
    if (
      await access(file).then(
        () => true,
        () => false,
      )
    )
      return file;
  }
  return undefined;
}

/** The tools, or why `public` cannot be given here (what is missing and which Debian package has it). */
async function findNetTools(): Promise<NetTools | string> {
  const needed = { unshare: 'util-linux', umount: 'mount', nft: 'nftables', nsenter: 'util-linux', pasta: 'passt' } as const;
  const found: Partial<NetTools> = {};
  for (const [name, pkg] of Object.entries(needed) as [keyof NetTools, string][]) {
    const path = await findTool(name);
    if (!path) return `${name} is not installed (Debian/Ubuntu package ${pkg})`;
    found[name] = path;
  }
  if (
    !(await access('/dev/net/tun').then(
      () => true,
      () => false,
    ))
  )
    return 'there is no /dev/net/tun (pasta needs a tap device)';
  return found as NetTools;
}

/** Runs a command to its end; rejects with its stderr. */
function run(argv: readonly string[], input?: string): Promise<void> {
  const [cmd, ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd ?? '', args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'], env: { PATH: TASK_PATH } });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.once('error', (err) => (clearTimeout(timer), reject(err)));
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      // pasta says "Failed to send … to syslog" where there is no syslog: not a cause.
      const said = stderr
        .split('\n')
        .filter((l) => l.trim() && !l.includes('to syslog'))
        .join('; ');
      if (code === 0) resolve();
      else reject(new Error(`${cmd?.split('/').pop() ?? ''} failed (${code ?? signal}): ${said || 'no message'}`));
    });
    child.stdin?.end(input);
  });
}

/** Whether `pid` is a pasta (or passt) process, so a recycled pid is never killed. */
async function isPasta(pid: number): Promise<boolean> {
  const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
  return comm.startsWith('pasta') || comm.startsWith('passt');
}

async function killPasta(name: string): Promise<void> {
  const pidFile = join(NETNS_DIR, `${name}.pid`);
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (pid > 0 && (await isPasta(pid))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await rm(pidFile, { force: true });
}

/** One sandbox's namespace: `enter` prefixes bwrap's command to join it; the task's /etc/resolv.conf is `resolvConf`. */
export interface PublicNetwork {
  readonly enter: readonly string[];
  readonly resolvConf: string;
  dispose(): Promise<void>;
}

export interface PublicNetworkOptions {
  /** Resolvers named in the task's /etc/resolv.conf (public addresses). */
  dns?: readonly string[];
}

export class PublicNetworks {
  private tools: Promise<NetTools | string> | undefined;
  private controlPlaneUrls: readonly string[] = [];
  private controlPlane: { at: number; addresses: string[] } | undefined;
  private readonly dns: readonly string[];

  constructor(options: PublicNetworkOptions = {}) {
    this.dns = options.dns && options.dns.length > 0 ? options.dns : DEFAULT_PUBLIC_DNS;
  }

  /** The control plane's URLs: their hosts' addresses are blocked as well. */
  setControlPlane(urls: readonly string[]): void {
    this.controlPlaneUrls = urls;
    this.controlPlane = undefined;
  }

  /** Why `public` cannot be given on this host, or undefined. */
  async problem(): Promise<string | undefined> {
    const tools = await this.netTools();
    return typeof tools === 'string' ? tools : undefined;
  }

  private netTools(): Promise<NetTools | string> {
    this.tools ??= findNetTools();
    return this.tools;
  }

  /** The control plane's addresses, resolved at most once a minute; the last good answer if a lookup fails. */
  private async controlPlaneAddresses(): Promise<string[]> {
    if (this.controlPlane && Date.now() - this.controlPlane.at < CONTROL_PLANE_TTL_MS) return this.controlPlane.addresses;
    try {
      const addresses: string[] = [];
      for (const url of this.controlPlaneUrls) {
        const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
        if (isIP(host)) addresses.push(host);
        else addresses.push(...(await lookup(host, { all: true })).map((a) => a.address));
      }
      this.controlPlane = { at: Date.now(), addresses };
    } catch (err) {
      if (!this.controlPlane) throw new Error(`cannot resolve the control plane's address to block it: ${(err as Error).message}`);
    }
    return this.controlPlane.addresses;
  }

  /** Makes a filtered namespace with pasta attached; throws with the reason `public` cannot be given. */
  async create(): Promise<PublicNetwork> {
    const tools = await this.netTools();
    if (typeof tools === 'string') throw new Error(`network "public" is not available on this agent: ${tools}`);
    const hostAddresses = Object.values(networkInterfaces())
      .flat()
      .map((i) => i?.address)
      .filter((a): a is string => a !== undefined);
    const rules = filterRules([...hostAddresses, ...(await this.controlPlaneAddresses())]);
    const name = `${PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
    const path = join(NETNS_DIR, name);
    await mkdir(NETNS_DIR, { recursive: true, mode: 0o700 });
    await writeFile(path, '', { flag: 'wx', mode: 0o600 });
    const network: PublicNetwork = {
      enter: [tools.nsenter, `--net=${path}`, '--'],
      resolvConf: this.dns.map((a) => `nameserver ${a}\n`).join(''),
      dispose: () => removeNetwork(tools, name),
    };
    try {
      // One exec: unshare makes the namespace, binds it to the file and loads the filter in it.
      await run([tools.unshare, `--net=${path}`, '--', tools.nft, '-f', '-'], rules);
      // Without -f pasta returns once the namespace is configured, then runs on as a daemon.
      await run([
        tools.pasta,
        ...['--runas', '0:0', '--quiet', '--config-net', '--no-map-gw'],
        ...['-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none'],
        ...['--netns', path, '--pid', `${path}.pid`],
      ]);
    } catch (err) {
      await network.dispose();
      throw new Error(`network "public" could not be set up: ${(err as Error).message}`);
    }
    return network;
  }

  /** Removes the namespaces (and their pasta) of agents of this host that are gone; returns how many. */
  async sweep(): Promise<number> {
    const tools = await this.netTools();
    if (typeof tools === 'string') return 0;
    const names = (await readdir(NETNS_DIR).catch(() => [] as string[])).filter((n) => n.startsWith(PREFIX) && !n.endsWith('.pid'));
    let swept = 0;
    for (const name of names) {
      const owner = Number(name.slice(PREFIX.length).split('-')[0]);
      if (
        owner === process.pid ||
        (owner > 0 &&
          (await access(`/proc/${owner}`).then(
            () => true,
            () => false,
          )))
      )
        continue;
      await removeNetwork(tools, name).catch(() => undefined);
      swept++;
    }
    return swept;
  }
}

async function removeNetwork(tools: NetTools, name: string): Promise<void> {
  await killPasta(name);
  const path = join(NETNS_DIR, name);
  // Lazy: pasta, just killed, may still hold the file open. Not mounted when unshare failed.
  await run([tools.umount, '--lazy', path]).catch(() => undefined);
  await rm(path, { force: true });
}
