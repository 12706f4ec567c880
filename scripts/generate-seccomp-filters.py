#!/usr/bin/python3
"""Generates the seccomp programs every Ferry sandbox loads (bubblewrap `--seccomp FD`).

Run it with Debian's python3-seccomp (libseccomp's own bindings):

    /usr/bin/python3 scripts/generate-seccomp-filters.py           # rewrites the TS module below
    /usr/bin/python3 scripts/generate-seccomp-filters.py --stdout  # prints it (the test compares)

It writes packages/agent/src/executor/seccomp/programs.generated.ts: one compiled classic-BPF
program per architecture (x86_64 and aarch64), base64, with the libseccomp version that made it.
The programs are checked in so that agents need neither libseccomp nor Python; the test
packages/agent/test/executor.seccomp.test.ts regenerates them and compares the bytes when the
same libseccomp version is installed.

Why a deny list and not an allow list
-------------------------------------
Docker's default profile is an allow list (about 350 calls, everything else EPERM). That makes
every syscall newer than the list fail with EPERM, which broke glibc's fallbacks more than once
(faccessat2, clone3), and Ferry runs the host's own tools, whatever their age. Tasks here are
already unprivileged: a per-task uid with no capabilities, no_new_privs, a read-only system and
fresh PID/IPC/UTS/cgroup/mount (and network) namespaces. So the filter allows by default and
denies, by name, the calls that (a) reach kernel code an unprivileged user can otherwise reach and
that is a known source of privilege escalations, or (b) need a capability the task never has and
are denied again here so that a kernel bug in a capability check is not enough. The list below
is Docker's "significant syscalls blocked by the default profile" plus the ones Docker gates
behind capabilities it does not grant, plus io_uring (blocked by Docker since 25.0).

The deny list (EPERM unless noted)
----------------------------------
User and other namespaces (a user namespace would give the task every capability in it, and with
them mount, new PID and network namespaces, and a large attack surface):
  clone             with any of CLONE_NEWUSER, NEWNS, NEWPID, NEWNET, NEWUTS, NEWIPC, NEWCGROUP
  unshare           with any of those or CLONE_NEWTIME (unshare of files/fs/sysvsem still works)
  clone3            ENOSYS: its flags sit in memory seccomp cannot read; glibc, Go and libuv then
                    fall back to clone, which the rule above checks
  setns
Mounts and roots (tasks have no CAP_SYS_ADMIN or CAP_SYS_CHROOT; belt and braces):
  mount umount2 pivot_root chroot fsopen fsconfig fsmount fspick move_mount open_tree mount_setattr
The kernel keyring (not namespaced by uid across tasks before, and not needed by tasks):
  keyctl add_key request_key
Unprivileged kernel attack surface:
  bpf perf_event_open userfaultfd io_uring_setup io_uring_enter io_uring_register
Other processes' memory and files (tasks run as their own uid, so only their own processes
could be traced anyway; denied so a task cannot weaken its own processes either):
  ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd
Kernel modules and kexec:
  init_module finit_module delete_module create_module query_module get_kernel_syms
  kexec_load kexec_file_load
File handles (the "shocker" escape needs open_by_handle_at; name_to_handle_at is its partner):
  open_by_handle_at name_to_handle_at
Host-wide state:
  acct swapon swapoff reboot settimeofday clock_settime clock_adjtime adjtimex syslog
  quotactl quotactl_fd sethostname setdomainname vhangup lookup_dcookie fanotify_init
NUMA placement (Docker blocks them; move_pages/migrate_pages act on other processes):
  mbind set_mempolicy get_mempolicy move_pages migrate_pages set_mempolicy_home_node
Obsolete or hardware-level:
  nfsservctl uselib _sysctl ustat sysfs iopl ioperm
Arguments checked:
  personality       only the values Docker allows: PER_LINUX (0), PER_LINUX32 (8), UNAME26
                    (0x20000), both (0x20008), and the query 0xffffffff; anything else (e.g.
                    ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) is EPERM
  socket            AF_VSOCK (40): a channel to the hypervisor, which Docker blocks too
Another architecture's calls (i386 or x32 on x86_64, arm32 on aarch64) kill the process: the
rules above are written for the native table, and the sandbox runs the host's 64-bit tools.

Calls absent from an architecture (create_module and friends on aarch64) are skipped for it.
"""
import base64
import ctypes
import errno
import hashlib
import os
import sys
import tempfile

import seccomp

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'packages', 'agent', 'src', 'executor', 'seccomp', 'programs.generated.ts')

# Node's process.arch name, the constant's name in the module, libseccomp's architecture.
ARCHES = [('x64', 'X86_64', seccomp.Arch.X86_64), ('arm64', 'AARCH64', seccomp.Arch.AARCH64)]

DENIED = [
    'setns',
    'mount', 'umount2', 'pivot_root', 'chroot', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'mount_setattr',
    'keyctl', 'add_key', 'request_key',
    'bpf', 'perf_event_open', 'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
    'ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd',
    'init_module', 'finit_module', 'delete_module', 'create_module', 'query_module', 'get_kernel_syms', 'kexec_load', 'kexec_file_load',
    'open_by_handle_at', 'name_to_handle_at',
    'acct', 'swapon', 'swapoff', 'reboot', 'settimeofday', 'clock_settime', 'clock_adjtime', 'adjtimex', 'syslog',
    'quotactl', 'quotactl_fd', 'sethostname', 'setdomainname', 'vhangup', 'lookup_dcookie', 'fanotify_init',
    'mbind', 'set_mempolicy', 'get_mempolicy', 'move_pages', 'migrate_pages', 'set_mempolicy_home_node',
    'nfsservctl', 'uselib', '_sysctl', 'ustat', 'sysfs', 'iopl', 'ioperm',
]

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
# clone() keeps the exit signal in its low byte, so CLONE_NEWTIME (0x80) is only a flag for unshare.
CLONE_NAMESPACES = [CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET]
UNSHARE_NAMESPACES = CLONE_NAMESPACES + [CLONE_NEWTIME]

AF_VSOCK = 40
PERSONALITY_ALLOWED_BITS = 0x00000008 | 0x00020000  # PER_LINUX32, UNAME26; 0 and 0xffffffff are the other allowed values
BIT31 = 1 << 31

EPERM = seccomp.ERRNO(errno.EPERM)


def personality_rules(add):
    """Deny every personality value but 0, 8, 0x20000, 0x20008 and 0xffffffff.

    libseccomp allows one comparison per argument in a rule, and rules for one call are OR'd, so
    the complement of those five values is written as masked patterns over the low 32 bits (the
    kernel reads an unsigned int; the upper half of the register is ignored by both):
    bit 31 clear with any bit set outside PER_LINUX32|UNAME26, or bit 31 set with any bit clear.
    """
    for bit in range(31):
        b = 1 << bit
        if b & PERSONALITY_ALLOWED_BITS:
            continue
        add(EPERM, 'personality', seccomp.Arg(0, seccomp.MASKED_EQ, BIT31 | b, b))
    for bit in range(31):
        add(EPERM, 'personality', seccomp.Arg(0, seccomp.MASKED_EQ, BIT31 | (1 << bit), BIT31))


def build(arch):
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    f.remove_arch(seccomp.Arch.NATIVE)
    f.add_arch(arch)
    f.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)

    def add(action, name, *args):
        if seccomp.resolve_syscall(arch, name) < 0:
            return  # not a call on this architecture
        f.add_rule(action, name, *args)

    for name in DENIED:
        add(EPERM, name)
    add(seccomp.ERRNO(errno.ENOSYS), 'clone3')
    for flag in CLONE_NAMESPACES:
        add(EPERM, 'clone', seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    for flag in UNSHARE_NAMESPACES:
        add(EPERM, 'unshare', seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # The kernel reads the domain as an int: compare the low 32 bits only, whatever the upper half holds.
    add(EPERM, 'socket', seccomp.Arg(0, seccomp.MASKED_EQ, 0xFFFFFFFF, AF_VSOCK))
    personality_rules(add)

    with tempfile.TemporaryFile() as out:  # export_bpf writes to a file descriptor
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def libseccomp_version():
    class Version(ctypes.Structure):
        _fields_ = [('major', ctypes.c_uint), ('minor', ctypes.c_uint), ('micro', ctypes.c_uint)]

    lib = ctypes.CDLL('libseccomp.so.2')
    lib.seccomp_version.restype = ctypes.POINTER(Version)
    v = lib.seccomp_version().contents
    return f'{v.major}.{v.minor}.{v.micro}'


def module():
    """The TS module, laid out as Prettier (printWidth 160) would print it, so regenerating is byte-exact."""
    lines = [
        '// Generated by scripts/generate-seccomp-filters.py (the deny list and its reasons are at its top). Do not edit:',
        '// run `/usr/bin/python3 scripts/generate-seccomp-filters.py` (Debian: python3-seccomp) and commit the result.',
        '',
        '/** The libseccomp version that compiled these programs (regenerating with another may give other bytes). */',
        f"export const LIBSECCOMP_VERSION = '{libseccomp_version()}';",
        '',
    ]
    for _, const, arch in ARCHES:
        program = build(arch)
        lines.append(f'// {const.lower()}: {len(program) // 8} instructions, sha256 {hashlib.sha256(program).hexdigest()}')
        lines.append(f'const {const} =')
        lines.append(f"  '{base64.b64encode(program).decode()}';")
        lines.append('')
    entries = ', '.join(f'{node_arch}: {const}' for node_arch, const, _ in ARCHES)
    lines.append('/** Classic BPF programs for bubblewrap --seccomp, base64, by Node process.arch. */')
    lines.append(f'export const SECCOMP_PROGRAMS: Readonly<Partial<Record<NodeJS.Architecture, string>>> = {{ {entries} }};')
    return '\n'.join(lines) + '\n'


def main():
    text = module()
    if sys.argv[1:] == ['--stdout']:
        sys.stdout.write(text)
        return
    if sys.argv[1:]:
        sys.exit('usage: generate-seccomp-filters.py [--stdout]')
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as out:
        out.write(text)
    print(f'wrote {os.path.normpath(OUT)}', file=sys.stderr)


if __name__ == '__main__':
    main()
