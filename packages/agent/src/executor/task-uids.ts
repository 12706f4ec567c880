/**
 * A uid (and the gid of the same number) for each running sandbox, so that kernel state keyed by
 * uid is never shared between tasks: the user keyring, inotify and fanotify instance limits,
 * RLIMIT_NPROC, pipe-buffer and locked-memory accounting, and who may signal or ptrace whom.
 *
 * The range (default 0x70000000–0x7000ffff, 65536 ids) sits in the part of the uid space that
 * systemd documents as unused: above its container ranges (0x00080000–0x6fffffff) and below
 * 2^31, where some code (devpts, setfsuid) treats uids as signed. It is far above login users
 * (1000–60000) and the /etc/subuid blocks Debian hands out (from 100000, 65536 a user).
 *
 * Agents on one host split the range into blocks of 1024 ids. An agent claims one block the first
 * time it makes a sandbox, with an exclusive flock(2) on `/run/ferry/task-uids/<first>.lock` that
 * it keeps for the rest of its life: the kernel drops the lock when the agent's process ends,
 * however it ends, so a crashed agent never strands its block. (Node has no flock of its own: the
 * util-linux `flock` command locks the agent's open file description, inherited as its stdin,
 * and exits; the lock belongs to the description, which the agent keeps open.) 64 agents fit.
 *
 * Each uid of the block is in one of three states:
 *
 *   free ──lease()──▶ leased ──release(uid, gone=true)──▶ free (back of the queue)
 *                        │
 *                        └──release(uid, gone=false)──▶ draining ──(no process has the uid)──▶ free
 *
 * `gone` is the caller's proof that no process of the task is left: the sandbox's cgroup is
 * empty and removed (the task could not leave it). Without that proof the uid drains: it is
 * freed only once /proc shows no process with it, checked whenever the free queue runs dry.
 * A block just claimed starts with that check too, in case a dead agent's tasks are still dying.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TaskUidRange {
  first: number;
  count: number;
}

export const DEFAULT_TASK_UIDS: TaskUidRange = Object.freeze({ first: 0x7000_0000, count: 0x1_0000 });
const BLOCK_SIZE = 1024;
const LOCK_DIR = '/run/ferry/task-uids';
const FLOCK_CONFLICT = 75;

export class TaskUidsUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TaskUidsUnavailableError';
  }
}

/** Host uids (real, effective, saved or filesystem) of every process, from /proc/<pid>/status. */
function uidsInUse(): Set<number> {
  const uids = new Set<number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let status: string;
    try {
      status = readFileSync(`/proc/${entry}/status`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    for (const uid of /^Uid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/) ?? []) uids.add(Number(uid));
  }
  return uids;
}

/** Names in /etc/passwd or /etc/group whose id falls in the range: tasks would run as them. */
function accountsInRange(range: TaskUidRange): string[] {
  const found: string[] = [];
  for (const file of ['/etc/passwd', '/etc/group']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const [name, , id] = line.split(':');
      const n = Number(id);
      if (name && id && n >= range.first && n < range.first + range.count) found.push(`${name} (${n}) in ${file}`);
    }
  }
  return found;
}

function validate(range: TaskUidRange): void {
  const { first, count } = range;
  if (!Number.isInteger(first) || !Number.isInteger(count) || first < 1000 || count < 1 || first + count > 2 ** 31)
    throw new TaskUidsUnavailableError(`task uid range ${first}+${count} is not usable: it must be whole numbers within 1000…2^31-1`);
  if (first <= 65535 && first + count > 65534) throw new TaskUidsUnavailableError(`task uid range ${first}+${count} includes 65534 (nobody) or 65535`);
  const taken = accountsInRange(range);
  if (taken.length > 0)
    throw new TaskUidsUnavailableError(`task uid range ${first}–${first + count - 1} holds existing accounts (${taken.join(', ')}); choose another range`);
}

/** Takes the flock on `fd`'s open file description (passed as the child's stdin); false when another process holds it. */
function tryLock(flock: string, fd: number): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const child = spawn(flock, ['--exclusive', '--nonblock', '--conflict-exit-code', String(FLOCK_CONFLICT), '0'], { stdio: [fd, 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (err) => reject(new TaskUidsUnavailableError(`${flock} could not be run to claim task uids: ${err.message}`, { cause: err })));
    child.once('close', (code) => {
      if (code === 0) resolve(true);
      else if (code === FLOCK_CONFLICT) resolve(false);
      else reject(new TaskUidsUnavailableError(`${flock} could not lock a task uid block (exit ${code}): ${stderr.trim()}`));
    });
  });
}

export class TaskUidBlock {
  private readonly free: number[] = [];
  private readonly leased = new Set<number>();
  private readonly draining = new Set<number>();

  private constructor(
    readonly first: number,
    readonly size: number,
  ) {
    const inUse = uidsInUse();
    for (let uid = first; uid < first + size; uid++) {
      if (inUse.has(uid)) this.draining.add(uid);
      else this.free.push(uid);
    }
  }

  /** Claims a free block of `range` for this process, starting at a random one so agents starting together rarely meet. */
  static async claim(range: TaskUidRange, flock: string, lockDir = LOCK_DIR): Promise<TaskUidBlock> {
    validate(range);
    const size = Math.min(BLOCK_SIZE, range.count);
    const blocks = Math.floor(range.count / size);
    try {
      mkdirSync(lockDir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new TaskUidsUnavailableError(`cannot make ${lockDir} for the task uid locks (the agent must run as root): ${(err as Error).message}`, {
        cause: err,
      });
    }
    const start = Math.floor(Math.random() * blocks);
    for (let i = 0; i < blocks; i++) {
      const first = range.first + ((start + i) % blocks) * size;
      // Kept open (and so locked) for the life of the process; close-on-exec, so tasks never inherit it.
      const fd = openSync(join(lockDir, `${first}.lock`), constants.O_RDWR | constants.O_CREAT, 0o600);
      let locked = false;
      try {
        locked = await tryLock(flock, fd);
      } finally {
        if (!locked) closeSync(fd);
      }
      if (locked) return new TaskUidBlock(first, size);
    }
    throw new TaskUidsUnavailableError(
      `all ${blocks} task uid blocks of ${range.first}–${range.first + range.count - 1} are held by other agents on this host (locks in ${lockDir}); give this agent another range`,
    );
  }

  /** A uid no process has, and that no other sandbox holds until it is released. */
  lease(): number {
    if (this.free.length === 0) this.settleDraining();
    const uid = this.free.shift();
    if (uid === undefined)
      throw new TaskUidsUnavailableError(
        `all ${this.size} task uids of block ${this.first} are in use or still have processes; lower the agent's --concurrency`,
      );
    this.leased.add(uid);
    return uid;
  }

  /** `gone`: the caller proved that no process of the task is left (its cgroup is empty). */
  release(uid: number, gone: boolean): void {
    if (!this.leased.delete(uid)) return;
    if (gone || !uidsInUse().has(uid)) this.free.push(uid);
    else this.draining.add(uid);
  }

  /** How many uids are waiting for their last process to end (for tests and logs). */
  get drainingCount(): number {
    return this.draining.size;
  }

  private settleDraining(): void {
    if (this.draining.size === 0) return;
    const inUse = uidsInUse();
    for (const uid of this.draining)
      if (!inUse.has(uid)) {
        this.draining.delete(uid);
        this.free.push(uid);
      }
  }
}

const claimed = new Map<string, Promise<TaskUidBlock>>();

/** This process's block of `range`: claimed once, shared by every executor in the process. */
export function taskUidBlock(range: TaskUidRange, flock: string, lockDir = LOCK_DIR): Promise<TaskUidBlock> {
  const key = `${range.first}:${range.count}:${lockDir}`;
  let block = claimed.get(key);
  if (!block) {
    block = TaskUidBlock.claim(range, flock, lockDir);
    claimed.set(key, block);
    block.catch(() => claimed.delete(key)); // a later sandbox may try again
  }
  return block;
}
