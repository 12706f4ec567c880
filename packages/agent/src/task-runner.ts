/**
 * Runs one claimed task from sandbox to final status.
 *
 * States: preparing (sandbox) → running (process alive, output streaming) → stopping (signal
 * ladder after cancel / timeout / lost lease) → reporting (flush output, post final status)
 * → done. The sandbox is ended before the final status is posted, so "finished" means
 * no process of the task is left on this machine; removing what it emptied (its cgroup's
 * folder, a public network's pasta) follows the report instead of preceding it, and may
 * outlast run(): the worker waits for it (removed) before the agent stops.
 */
import type { Logger } from 'pino';
import { MIN_MASKED_SECRET_LENGTH, Streams, formatSize, type Assignment, type FinalStatus, type StreamId } from '@ferry/protocol';
import { Routes, isRetryable, withRetry, type FerryClient } from '@ferry/client';
import { type Executor, type ExitInfo, type RunningProcess, type Sandbox } from './executor/types.js';
import { LeaseLostError, OutputUploader, type UploaderOptions, DEFAULT_UPLOADER_OPTIONS } from './output/uploader.js';
import { TaskSpool } from './output/spool.js';
import { deliverFinalStatus, type FinalOutcome } from './output/deliver.js';
import { MissingSecretError, runSpecFor } from './runtime.js';
import type { KeyStore } from './secrets/key-store.js';
import { prepareSecrets, SecretPreparationError } from './secrets/prepare.js';
import { SecretMasker } from './output/masker.js';
import { TurnCopies } from './output/turn-copies.js';
import { isLeaseLost, messageOf } from './server-answers.js';

export interface TaskRunnerDeps {
  client: FerryClient;
  keys: KeyStore;
  spoolDir: string;
  executor: Executor;
  log: Logger;
  graceMs: number;
  uploader?: UploaderOptions;
}

/** How long output may keep arriving after the task's main process exited. */
const PIPE_SETTLE_MS = 2000;

/** The longest an ended sandbox's remains wait for the final status's delivery before they are removed anyway. */
const REMOVE_AFTER_MS = 1000;

/** The masker's clock: output is held for two ticks, so a value split between stdout and stderr is found. */
const MASK_TICK_MS = 20;

type StopReason = 'cancelled' | 'timed_out' | 'lease_lost';

export class TaskRunner {
  private stopReason: StopReason | undefined;
  private proc: RunningProcess | undefined;
  private ladder: Promise<'sigterm' | 'sigkill' | 'already-exited'> | undefined;
  private readonly log: Logger;
  /** The task's spool and uploader: made as the task starts (or, if it never does, for its final status). */
  private io: { spool: TaskSpool; uploader: OutputUploader } | undefined;
  private masking: SecretMasker | undefined;
  private secretEnv: Map<string, string> = new Map();
  private spoolError: Error | undefined;
  /** The memory limit made the kernel kill a process of the task. */
  private outOfMemory = false;
  /** The ended sandbox's removal (see removed). */
  private removal: Promise<void> = Promise.resolve();
  /** The server's answer to the start confirmation, asked for as the runner is made. */
  private readonly confirmed: Promise<boolean>;

  constructor(
    readonly task: Assignment,
    private readonly deps: TaskRunnerDeps,
  ) {
    this.log = deps.log.child({ taskId: task.id });
    // The server's "started": asked for before anything else, and awaited in run() before the
    // task is handed its sandbox. Node writes the request on the next tick, so everything
    // synchronous that follows it in this turn (secrets, the masker) would hold it back: run()
    // lets it go out first and does that work while it is in flight.
    this.confirmed = this.confirmStart();
  }

  /** Cancellation, timeout and a lost lease all stop the task through the signal ladder. */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    if (reason === 'lease_lost') this.io?.uploader.abandon();
    if (this.proc) this.ladder = this.proc.terminate(this.deps.graceMs);
  }

  async run(): Promise<void> {
    const started = Date.now();
    // One macrotask: the confirmation's request (queued on the next tick) is written first.
    await new Promise<void>((resolve) => setImmediate(resolve));
    let unmasked: string[] = [];
    let sandbox: Sandbox | undefined;
    let exit: ExitInfo | undefined;
    let oomRead: Promise<boolean> | undefined;
    let errorReason: string | undefined;
    // The start is confirmed with the server (a compare-and-set on our lease) while the secrets
    // are opened and the sandbox is made, and nothing runs before the yes: a task requeued while
    // this agent was cut off must not run here as well as on the agent that took it over.
    const confirmed = this.confirmed;
    try {
      const secrets = prepareSecrets(this.task, this.deps.keys);
      this.masking = new SecretMasker([...secrets.env.values()]);
      unmasked = secrets.unmasked;
      this.secretEnv = secrets.env;
      sandbox = await this.deps.executor.create(this.task.id, {
        network: this.task.network,
        maxProcesses: this.task.maxProcesses,
        memoryBytes: this.task.memoryBytes,
      });
      if (!(await confirmed)) this.stop('lease_lost');
      if (this.stopReason === 'lease_lost') throw new LeaseLostError(this.task.id);
      this.proc = sandbox.start(runSpecFor(this.task, this.secretEnv));
      this.secretEnv = new Map();
      // The spool (synchronous disk writes: 0.3 ms on a quiet disk, several under load) is made
      // while the task starts, not before: nothing reads its output until it exists, so no byte
      // is lost (the pipes hold it). An agent killed in between leaves no spool for this task,
      // which the server then marks lost when its lease lapses.
      this.openSpool(unmasked);
      if (this.stopReason) this.ladder = this.proc.terminate(this.deps.graceMs);
      const timeout = setTimeout(() => this.stop('timed_out'), this.task.timeoutSeconds * 1000);
      exit = await this.pipeOutput(this.proc);
      clearTimeout(timeout);
      // Read while the sandbox is ended (endSandbox), not before: both only need its cgroup.
      oomRead = sandbox.outOfMemory?.().catch(() => false);
    } catch (err) {
      if (err instanceof LeaseLostError) this.stop('lease_lost');
      errorReason =
        err instanceof SecretPreparationError || err instanceof MissingSecretError ? err.message : `could not start the task: ${(err as Error).message}`;
      this.log.error({ err }, 'task failed to start');
    } finally {
      await this.endSandbox(sandbox, oomRead);
    }
    this.outOfMemory = (await oomRead) ?? false;
    // A task that never started has its spool made now, for its final status.
    const io = this.io ?? this.openSpool(unmasked);
    // Where end() did not do all of it (no end(): dispose() already ran above).
    const dispose = (): Promise<void> =>
      sandbox?.end ? sandbox.dispose().catch((err: unknown) => this.log.error({ err }, 'sandbox removal failed')) : Promise.resolve();
    // A start that failed early (secrets) waits for the confirmation, so its final status cannot
    // overtake it, and is not reported for a task this agent turns out not to hold.
    if (!(await confirmed)) this.stop('lease_lost');
    if (this.stopReason === 'lease_lost') {
      this.log.warn('task abandoned: this agent no longer holds it');
      void io.spool.remove();
      this.removal = dispose();
      return;
    }
    const final = await this.finalStatus(exit, errorReason);
    const ms = Date.now() - started;
    const delivered = deliverFinalStatus(this.deps.client, io.spool, io.uploader, final, this.log);
    // What the ended sandbox left that runs nothing of the task (its emptied cgroup, a public
    // network's pasta) is removed once the status is delivered: a public task's status waited
    // ~6 ms for pasta's teardown, and the cgroup's removal (kernel work under cgroup_mutex) ran
    // beside the status (bench/README.md). At the latest REMOVE_AFTER_MS after its delivery
    // began, so an unreachable server does not keep them; a crash in between leaves them to the
    // next start's sweep.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([delivered.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, REMOVE_AFTER_MS)))]);
    clearTimeout(timer);
    this.removal = dispose();
    await delivered;
    // Logged once delivered: the line is a synchronous write, which held the status back.
    this.log.info({ status: final.status, exitCode: final.exitCode, ms }, 'task finished');
  }

  /** The server's answer to the start confirmation: true once it confirmed; never rejects. */
  get startConfirmed(): Promise<boolean> {
    return this.confirmed;
  }

  /**
   * The ended sandbox's removal, which may still be under way when run() resolves: the task is
   * over (its processes dead, its status delivered), so its slot is free, and the worker waits
   * for this before the agent stops.
   */
  get removed(): Promise<void> {
    return this.removal;
  }

  /**
   * The task's processes all dead (end(), or dispose() where there is no end()), while the
   * memory limit's kill count is read: dispose() removes the cgroup that counts them, so it
   * waits for that read.
   */
  private async endSandbox(sandbox: Sandbox | undefined, oomRead: Promise<boolean> | undefined): Promise<void> {
    if (!sandbox) return;
    const ending = sandbox.end?.() ?? oomRead?.then(() => sandbox.dispose()) ?? sandbox.dispose();
    await ending.catch((err: unknown) => this.log.error({ err }, 'sandbox disposal failed'));
  }

  /** Makes the task's spool and uploader; `unmasked`: secrets too short to mask, said in the output first. */
  private openSpool(unmasked: readonly string[]): { spool: TaskSpool; uploader: OutputUploader } {
    const spool = TaskSpool.create(this.deps.spoolDir, this.task.id);
    const uploader = new OutputUploader(this.deps.client, spool, this.log, this.deps.uploader ?? DEFAULT_UPLOADER_OPTIONS);
    uploader.limitBytes = this.task.maxOutputBytes;
    uploader.on('failure', (err: Error) => {
      if (err instanceof LeaseLostError) this.stop('lease_lost');
    });
    // Refused before the spool was made (a heartbeat, a failed confirmation).
    if (this.stopReason === 'lease_lost') uploader.abandon();
    for (const name of unmasked) {
      uploader.write(
        Streams.system,
        Buffer.from(`[ferry] warning: secret ${name} is shorter than ${MIN_MASKED_SECRET_LENGTH} characters and is not masked in output\n`),
      );
    }
    this.io = { spool, uploader };
    return this.io;
  }

  private get uploader(): OutputUploader {
    if (!this.io) throw new Error('the task spool is not open yet');
    return this.io.uploader;
  }

  /** True once the server confirms we hold the task; false if it says we do not or the lease runs out. */
  private async confirmStart(): Promise<boolean> {
    const deadline = Date.now() + this.task.leaseSeconds * 1000 * 0.8;
    try {
      await withRetry(() => this.deps.client.call(Routes.confirmStart, { params: { id: this.task.id } }), { baseMs: 100, capMs: 2000, deadline });
      return true;
    } catch (err) {
      if (isLeaseLost(err)) return false;
      if (isRetryable(err)) this.log.warn('could not confirm the start before the lease ran out; not running the task');
      else this.log.error({ err: messageOf(err) }, 'the server refused the start');
      return false;
    }
  }

  private async pipeOutput(proc: RunningProcess): Promise<ExitInfo> {
    // Secrets are masked here, before output reaches the spool or the network: both streams
    // together, so a value split between stdout and stderr is masked on both (masker-stream.ts).
    const masked = this.masking?.forStreams<StreamId>([Streams.stdout, Streams.stderr]);
    const write = (pieces: [StreamId, Buffer][]): void => {
      try {
        for (const [sid, bytes] of pieces) this.uploader.write(sid, bytes);
      } catch (err) {
        // The spool could not take it (disk full): stop this task, not the agent.
        this.spoolError ??= err as Error;
        this.stop('cancelled');
      }
    };
    // What the pipes give in one event-loop turn goes to the masker together, and it keeps
    // output for two ticks of this clock: a value split between stdout and stderr is found
    // across the two (output/stream-seams.ts). The pipes' chunks are borrowed
    // (executor/types.ts), so the turn keeps copies; unmasked, a chunk is written at once.
    const turn = new TurnCopies<StreamId>();
    const ticks = masked ? setInterval(() => write(masked.tick()), MASK_TICK_MS).unref() : undefined;
    let open = 2;
    const endTurn = (): void => {
      if (turn.empty || !masked) return;
      write(masked.pushTurn(turn.take()));
    };
    const pump = (stream: NodeJS.ReadableStream & { pause(): void; resume(): void }, id: StreamId): Promise<void> =>
      new Promise((resolve) => {
        let ended = false;
        const finish = (): void => {
          if (!ended && masked) {
            endTurn();
            write(masked.end(id));
            if (--open === 0) clearInterval(ticks);
          }
          ended = true;
          resolve();
        };
        stream.on('data', (data: Buffer) => {
          if (!masked) return write([[id, data]]);
          if (turn.empty) setImmediate(endTurn);
          turn.add(id, data);
        });
        stream.once('end', finish);
        stream.once('close', finish);
        stream.once('error', finish);
      });
    const drained = Promise.all([pump(proc.stdout, Streams.stdout), pump(proc.stderr, Streams.stderr)]);
    const exit = await proc.exited;
    // The executor has killed what the task left behind; a process that escaped (process
    // executor, setsid) may still hold the pipes open, so do not wait on them forever.
    const settle = new Promise<'late'>((r) => setTimeout(() => r('late'), PIPE_SETTLE_MS).unref());
    if ((await Promise.race([drained, settle])) === 'late') {
      this.log.warn("the task's output pipes stayed open after it exited; closing them");
      proc.stdout.destroy();
      proc.stderr.destroy();
    }
    return exit;
  }

  private async finalStatus(exit: ExitInfo | undefined, errorReason: string | undefined): Promise<FinalOutcome> {
    if (this.spoolError) errorReason = `the agent could not keep the task's output (${this.spoolError.message}); the task was stopped`;
    if (errorReason !== undefined || !exit) {
      return { status: 'error', exitCode: null, signal: null, reason: errorReason ?? 'the task did not run' };
    }
    const ladder = this.ladder ? await this.ladder : undefined;
    const how =
      ladder === 'sigkill'
        ? `killed with SIGKILL after the ${this.deps.graceMs / 1000} s grace period`
        : ladder === 'sigterm'
          ? 'stopped by SIGTERM'
          : 'it had already exited';
    let status: FinalStatus;
    let reason: string | null = null;
    if (this.stopReason === 'cancelled') {
      status = 'cancelled';
      reason = `cancelled: ${how}`;
    } else if (this.stopReason === 'timed_out') {
      status = 'timed_out';
      reason = `timed out after ${this.task.timeoutSeconds} s: ${how}`;
    } else {
      status = exit.code === 0 ? 'succeeded' : 'failed';
      if (exit.signal) reason = `terminated by ${exit.signal}`;
      // "failed 137" alone leaves the user guessing; the limit tells them what to raise.
      if (status === 'failed' && this.outOfMemory) reason = `out of memory (limit ${formatSize(this.task.memoryBytes)})`;
    }
    if (this.stopReason) {
      try {
        this.uploader.write(Streams.system, Buffer.from(`[ferry] ${reason}\n`));
      } catch {
        // the spool is what failed; the final status still says why
      }
    }
    return { status, exitCode: exit.code, signal: exit.signal, reason };
  }
}
