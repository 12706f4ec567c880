/**
 * The seccomp filter every sandbox loads: the calls it denies fail inside a task the way a user
 * would see them, the tools tasks use still work under it, and the checked-in programs are what
 * the generator makes. Needs root and bwrap (and python3 for the raw system calls).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LIBSECCOMP_VERSION, SECCOMP_PROGRAMS } from '../src/executor/seccomp/programs.generated.js';
import { runTask, usable } from './helpers/sandbox-run.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const hasPython = spawnSync('python3', ['-c', 'import ctypes']).status === 0;
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

/**
 * Each raw system call with arguments that succeed (or fail differently) without the filter, so
 * EPERM means the filter: e.g. add_key to the user keyring and unshare(CLONE_NEWUSER) work for
 * any uid, and userfaultfd(UFFD_USER_MODE_ONLY) needs no privilege.
 */
const SYSCALL_PROBE = String.raw`
import ctypes, errno, platform, socket
libc = ctypes.CDLL(None, use_errno=True)
NR = {
    'x86_64': dict(bpf=321, perf_event_open=298, io_uring_setup=425, userfaultfd=323, keyctl=250, add_key=248, request_key=249,
                   unshare=272, clone3=435, ptrace=101, personality=135, setns=308, mount=165, socket=41),
    'aarch64': dict(bpf=280, perf_event_open=241, io_uring_setup=425, userfaultfd=282, keyctl=219, add_key=217, request_key=218,
                    unshare=97, clone3=435, ptrace=117, personality=92, setns=268, mount=40, socket=198),
}[platform.machine()]
L = ctypes.c_long
def call(name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(L(NR[name]), *args)
    return 'ok' if r != -1 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
attr = (ctypes.c_uint64 * 16)()
attr_bytes = ctypes.cast(attr, ctypes.POINTER(ctypes.c_uint32))
attr_bytes[0] = 1      # PERF_TYPE_SOFTWARE
attr_bytes[1] = 128    # size
attr[5] = (1 << 5) | (1 << 6)  # exclude_kernel, exclude_hv
params = (ctypes.c_uint8 * 120)()
uts = open('/proc/self/ns/uts')
results = {
    'bpf': call('bpf', L(0), None, L(0)),
    'perf_event_open': call('perf_event_open', attr, L(0), L(-1), L(-1), L(0)),
    'io_uring_setup': call('io_uring_setup', L(1), params),
    'userfaultfd': call('userfaultfd', L(1)),
    'keyctl': call('keyctl', L(0), L(-4), L(0)),
    'add_key': call('add_key', b'user', b'ferry-test', b'secret', L(6), L(-4)),
    'request_key': call('request_key', b'user', b'ferry-test', None, L(-4)),
    'unshare_newuser': call('unshare', L(0x10000000)),
    'unshare_newns': call('unshare', L(0x00020000)),
    'clone3': call('clone3', None, L(0)),
    'ptrace_traceme': call('ptrace', L(0), L(0), L(0), L(0)),
    'setns': call('setns', L(uts.fileno()), L(0)),
    'mount': call('mount', b'none', b'/tmp', b'tmpfs', L(0), None),
    'personality_no_aslr': call('personality', L(0x0040000)),
    'personality_high_bits': call('personality', L(0xC0400000)),
    'personality_query': call('personality', L(0xffffffff)),
    'personality_linux': call('personality', L(0)),
    'socket_vsock_high_bits': call('socket', L((1 << 32) | 40), L(1), L(0)),
}
try:
    socket.socket(40, socket.SOCK_STREAM).close()
    results['socket_vsock'] = 'ok'
except OSError as e:
    results['socket_vsock'] = errno.errorcode.get(e.errno, str(e.errno))
for k, v in results.items():
    print(k, v)
`;

test('a task runs under a seccomp filter that denies namespaces, the keyring, bpf, perf, io_uring and userfaultfd', async (t) => {
  if (!usable(t)) return;
  if (!hasPython) return t.skip('python3 is needed to make raw system calls');
  const status = await runTask('grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status');
  assert.equal(status.out, 'NoNewPrivs:\t1\nSeccomp:\t2\n');
  const r = await runTask(SYSCALL_PROBE, ['python3', '{script}']);
  assert.equal(r.err, '');
  const results = Object.fromEntries(
    r.out
      .trim()
      .split('\n')
      .map((l) => l.split(' ')),
  );
  assert.deepEqual(results, {
    bpf: 'EPERM',
    perf_event_open: 'EPERM',
    io_uring_setup: 'EPERM',
    userfaultfd: 'EPERM',
    keyctl: 'EPERM',
    add_key: 'EPERM',
    request_key: 'EPERM',
    unshare_newuser: 'EPERM',
    unshare_newns: 'EPERM',
    clone3: 'ENOSYS', // so libc falls back to clone, whose flags the filter can read
    ptrace_traceme: 'EPERM',
    setns: 'EPERM',
    mount: 'EPERM',
    personality_no_aslr: 'EPERM',
    personality_high_bits: 'EPERM',
    personality_query: 'ok',
    personality_linux: 'ok',
    socket_vsock_high_bits: 'EPERM', // the kernel reads an int: upper bits do not slip past the filter
    socket_vsock: 'EPERM',
  });
});

test('unshare -U, unshare -r and user namespaces from python fail inside a task with "Operation not permitted"', async (t) => {
  if (!usable(t)) return;
  const r = await runTask(
    [
      'unshare -U true; echo "unshare -U: $?"',
      'unshare -r true; echo "unshare -r: $?"',
      'unshare --map-root-user --mount --pid --fork true; echo "unshare -rmp: $?"',
      hasPython
        ? `python3 -c 'import ctypes, os; l = ctypes.CDLL(None, use_errno=True); r = l.unshare(0x10000000); print("python unshare:", r, os.strerror(ctypes.get_errno()))'`
        : 'true',
    ].join('\n'),
  );
  assert.match(r.out, /^unshare -U: 1\nunshare -r: 1\nunshare -rmp: 1\n/);
  if (hasPython) assert.match(r.out, /python unshare: -1 Operation not permitted\n$/);
  assert.equal(r.err.match(/unshare: unshare failed: Operation not permitted/g)?.length, 3, r.err);
});

test('the tools tasks use still work under the filter: bash, awk, perl, python3 with threads, node with workers, kubectl, psql, mariadb', async (t) => {
  if (!usable(t)) return;
  const lines = [
    'echo "bash $((6 * 7))"',
    `awk 'BEGIN { print "awk", 6 * 7 }'`,
    `perl -e 'print "perl ", 6 * 7, "\\n"'`,
    `(sleep 0.01 & wait $!) && echo "fork-wait ok"`,
    'echo "pipes $(seq 1 100 | sort -rn | head -1)"',
  ];
  const optional: [string, string, RegExp][] = [
    [
      'python3',
      `python3 -c 'import threading, subprocess; r = []; ts = [threading.Thread(target=lambda: r.append(1)) for _ in range(4)]; [x.start() for x in ts]; [x.join() for x in ts]; print("python", len(r), subprocess.run(["true"]).returncode)'`,
      /^python 4 0$/m,
    ],
    [
      'node',
      `node -e 'const { Worker } = require("worker_threads"); new Worker("require(\\"worker_threads\\").parentPort.postMessage(42)", { eval: true }).on("message", (m) => { console.log("node", m); process.exit(0); })'`,
      /^node 42$/m,
    ],
    ['kubectl', 'kubectl version --client -o json | grep -c gitVersion', /^1$/m],
    ['psql', 'psql --version', /^psql \(PostgreSQL\) \d+/m],
    ['mariadb', 'mariadb --version', /mariadb.*Ver/im],
  ];
  const present = optional.filter(([tool]) => has(tool));
  for (const [tool] of optional.filter((o) => !present.includes(o))) t.diagnostic(`${tool} is not installed here; not checked`);
  const r = await runTask([...lines, ...present.map(([, line]) => line)].join('\n'));
  assert.equal(r.exit.code, 0, r.err);
  assert.match(r.out, /^bash 42\nawk 42\nperl 42\nfork-wait ok\npipes 100\n/);
  for (const [tool, , expected] of present) assert.match(r.out, expected, `${tool}: ${r.out}\n${r.err}`);
});

/** Classic BPF instructions: code (u16), jt, jf (u8), k (u32), little-endian as both targets are. */
function instructions(base64: string): { code: number; jt: number; jf: number; k: number }[] {
  const bytes = Buffer.from(base64, 'base64');
  return Array.from({ length: bytes.length / 8 }, (_, i) => ({
    code: bytes.readUInt16LE(i * 8),
    jt: bytes.readUInt8(i * 8 + 2),
    jf: bytes.readUInt8(i * 8 + 3),
    k: bytes.readUInt32LE(i * 8 + 4),
  }));
}

test('each program kills a process that uses another ABI (i386 or x32 on x86_64, arm32 on aarch64) before any rule', () => {
  const LD_ARCH = { code: 0x20, k: 4 }; // BPF_LD|BPF_W|BPF_ABS, offsetof(struct seccomp_data, arch)
  const RET_KILL_PROCESS = { code: 0x06, k: 0x8000_0000 };
  for (const [arch, audit] of [
    ['x64', 0xc000_003e],
    ['arm64', 0xc000_00b7],
  ] as const) {
    const program = instructions(SECCOMP_PROGRAMS[arch] ?? '');
    assert.deepEqual({ code: program[0]?.code, k: program[0]?.k }, LD_ARCH, `${arch}: loads the architecture first`);
    const check = program[1];
    assert.ok(check && check.code === 0x15 && check.k === audit, `${arch}: compares it with AUDIT_ARCH ${audit.toString(16)}`);
    const otherwise = program[1 + 1 + (check.k === audit ? check.jf : 0)];
    assert.deepEqual({ code: otherwise?.code, k: otherwise?.k }, RET_KILL_PROCESS, `${arch}: any other architecture is killed`);
  }
  // x32 calls carry the native audit arch with bit 30 set in the number: the x86_64 program rejects them next.
  const x64 = instructions(SECCOMP_PROGRAMS.x64 ?? '');
  assert.ok(
    x64.slice(2, 6).some((i) => i.code === 0x35 && i.k === 0x4000_0000),
    'x86_64: syscall numbers at or above 0x40000000 (x32) are checked',
  );
});

test('the checked-in seccomp programs are what the generator makes from its deny list', (t) => {
  const script = join(ROOT, 'scripts/generate-seccomp-filters.py');
  const module = join(ROOT, 'packages/agent/src/executor/seccomp/programs.generated.ts');
  assert.ok(SECCOMP_PROGRAMS.x64 && SECCOMP_PROGRAMS.arm64, 'programs for x64 and arm64');
  const python = '/usr/bin/python3';
  const version = spawnSync(python, ['-c', 'import seccomp, ctypes; print("ok")'], { encoding: 'utf8' });
  if (version.stdout.trim() !== 'ok') return t.skip('python3-seccomp is not installed (Debian: apt-get install python3-seccomp)');
  const generated = spawnSync(python, [script, '--stdout'], { encoding: 'utf8' });
  assert.equal(generated.status, 0, generated.stderr);
  const installed = /LIBSECCOMP_VERSION = '([^']+)'/.exec(generated.stdout)?.[1];
  if (installed !== LIBSECCOMP_VERSION)
    return t.skip(`libseccomp ${installed} is installed, the programs were made with ${LIBSECCOMP_VERSION}: bytes may differ`);
  assert.equal(generated.stdout, readFileSync(module, 'utf8'), 'regenerate with: /usr/bin/python3 scripts/generate-seccomp-filters.py');
});
