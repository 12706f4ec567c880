/**
 * One task: its facts (status, exit code, duration, who ran it, on which agent), its output
 * streaming live (long-polled reads that the server answers the moment output is stored), its
 * script, and what can be done with it: cancel, approve or reject with a comment (when it waits
 * for a review), download the whole log.
 */
import { decodeFrames, isTerminal, type Task } from '@ferry/protocol';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Notice } from '../components/form';
import { OutputView } from '../components/output-view';
import { StatusBadge } from '../components/status';
import { api, errorText, Routes } from '../lib/api';
import { taskDuration, when, who } from '../lib/format';
import { OutputLog } from '../lib/output-log';
import type { PageProps } from '../routes';

const READ_BYTES = 1024 * 1024;
/** A long poll waits at most this long for new output before asking again. */
const WAIT_SECONDS = 25;
const TASK_REFRESH_MS = 1000;

/** Reads the output from the start, following it live until the task ends and all was read. */
function useOutput(id: string, onStatus: (status: string) => void): { log: OutputLog; version: number; error: string } {
  const log = useRef(new OutputLog());
  const [version, setVersion] = useState(0);
  const [error, setError] = useState('');
  const status = useRef(onStatus);
  status.current = onStatus;

  useEffect(() => {
    log.current = new OutputLog();
    setVersion(0);
    const abort = new AbortController();
    let frame = 0;
    // Draws at most once per animation frame however fast output comes.
    const redraw = (): void => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setVersion(log.current.version);
      });
    };
    void (async () => {
      let offset = 0;
      for (;;) {
        try {
          const page = await api.call(Routes.readOutput, {
            params: { id },
            query: { offset, waitSeconds: WAIT_SECONDS, maxBytes: READ_BYTES },
            signal: abort.signal,
          });
          if (page.body.length > 0) {
            log.current.append(decodeFrames(page.body));
            redraw();
          }
          offset = page.nextOffset;
          status.current(page.taskStatus);
          setError('');
          if (page.complete) return;
        } catch (err) {
          if (abort.signal.aborted) return;
          setError(`Output: ${errorText(err)} (retrying)`);
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
    })();
    return () => {
      abort.abort();
      cancelAnimationFrame(frame);
    };
  }, [id]);
  return { log: log.current, version, error };
}

/** Fetches all of the output's bytes (as stored, not as drawn) and saves them as a file. */
async function downloadLog(id: string): Promise<void> {
  const parts: BlobPart[] = [];
  let offset = 0;
  for (;;) {
    const page = await api.call(Routes.readOutput, { params: { id }, query: { offset, maxBytes: 8 * 1024 * 1024 } });
    for (const f of decodeFrames(page.body)) parts.push(new Uint8Array(f.data));
    if (page.nextOffset === offset) break;
    offset = page.nextOffset;
  }
  const url = URL.createObjectURL(new Blob(parts, { type: 'text/plain' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `ferry-task-${id}.log`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function Review({ task, onDone }: { task: Task; onDone: (t: Task) => void }) {
  const [comment, setComment] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const decide = async (decision: 'approve' | 'reject'): Promise<void> => {
    setBusy(true);
    setError('');
    try {
      const text = comment.trim();
      if (decision === 'reject' && !text) throw new Error('Say why in the comment: a rejection needs one.');
      const params = { id: task.id };
      onDone(
        decision === 'approve'
          ? await api.call(Routes.approveTask, { params, body: text ? { comment: text } : {} })
          : await api.call(Routes.rejectTask, { params, body: { comment: text } }),
      );
      setComment('');
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const review = task.review;
  return (
    <section class="review" aria-labelledby="review-h">
      <h2 id="review-h">Review</h2>
      {review && (
        <p>
          Needs {review.approvalsNeeded} approval{review.approvalsNeeded === 1 ? '' : 's'}
          {review.group ? ` from group ${review.group}` : ''}; waits until {when(review.expiresAt)}.
        </p>
      )}
      {review && review.decisions.length > 0 && (
        <ul>
          {review.decisions.map((d) => (
            <li key={`${d.by}-${d.at}`}>
              {who(d.by)} {d.decision === 'approve' ? 'approved' : 'rejected'} at {when(d.at)}
              {d.comment ? `: “${d.comment}”` : ''}
            </li>
          ))}
        </ul>
      )}
      {task.status === 'pending_review' && (
        <>
          {error && <Notice kind="error">{error}</Notice>}
          <div class="field">
            <label for="review-comment">Comment</label>
            <textarea id="review-comment" rows={2} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
          </div>
          <div class="actions">
            <button type="button" disabled={busy} onClick={() => void decide('approve')}>
              Approve
            </button>
            <button type="button" class="danger" disabled={busy} onClick={() => void decide('reject')}>
              Reject
            </button>
          </div>
        </>
      )}
    </section>
  );
}

export default function TaskPage({ params }: PageProps) {
  const id = params.id ?? '';
  const [task, setTask] = useState<Task>();
  const [script, setScript] = useState<string>();
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [, setNow] = useState(0);
  const lastStatus = useRef('');

  const refresh = async (): Promise<void> => {
    try {
      const t = await api.call(Routes.getTask, { params: { id } });
      lastStatus.current = t.status;
      setTask(t);
      setError('');
    } catch (err) {
      setError(errorText(err));
    }
  };
  // A status the output reader sees change triggers a refresh of the facts at once.
  const {
    log,
    version,
    error: outputError,
  } = useOutput(id, (status) => {
    if (status && status !== lastStatus.current) void refresh();
  });

  useEffect(() => {
    void refresh();
    api
      .call(Routes.getTaskScript, { params: { id } })
      .then(setScript)
      .catch(() => setScript(undefined));
  }, [id]);

  // While it is not finished: its facts (and the running duration) every second.
  useEffect(() => {
    if (task && isTerminal(task.status)) return;
    const timer = window.setInterval(() => {
      setNow(Date.now());
      void refresh();
    }, TASK_REFRESH_MS);
    return () => window.clearInterval(timer);
  }, [id, task?.status]);

  const cancel = async (): Promise<void> => {
    try {
      setTask(await api.call(Routes.cancelTask, { params: { id } }));
      setNotice('Cancel requested.');
    } catch (err) {
      setError(errorText(err));
    }
  };

  if (!task) {
    return (
      <>
        <h1>Task {id}</h1>
        {error ? <Notice kind="error">{error}</Notice> : <p aria-live="polite">Loading…</p>}
      </>
    );
  }
  const finished = isTerminal(task.status);
  return (
    <>
      <h1>
        Task <span class="mono">{task.id}</span>
      </h1>
      {error && <Notice kind="error">{error}</Notice>}
      {notice && <Notice kind="info">{notice}</Notice>}
      <div role="status" aria-live="polite" class="task-status">
        <StatusBadge status={task.status} />
        {task.cancelRequested && !finished && <span> (cancelling)</span>}
      </div>
      <dl class="facts">
        <dt>Target</dt>
        <dd>{task.target}</dd>
        <dt>Exit code</dt>
        <dd>{task.exitCode ?? (task.signal ? `signal ${task.signal}` : '–')}</dd>
        <dt>Duration</dt>
        <dd>{taskDuration(task)}</dd>
        <dt>By</dt>
        <dd>{who(task.createdBy)}</dd>
        <dt>Agent</dt>
        <dd>{task.agent ?? '–'}</dd>
        <dt>Created</dt>
        <dd>{when(task.createdAt)}</dd>
        <dt>Finished</dt>
        <dd>{when(task.finishedAt)}</dd>
        {task.reason && (
          <>
            <dt>Reason</dt>
            <dd>{task.reason}</dd>
          </>
        )}
        {task.runbook && (
          <>
            <dt>Runbook</dt>
            <dd>
              {task.runbook.source}/{task.runbook.name} at {task.runbook.commit.slice(0, 12)}
            </dd>
          </>
        )}
      </dl>
      <div class="actions">
        {!finished && (
          <button type="button" class="danger" onClick={() => void cancel()} disabled={task.cancelRequested}>
            Cancel task
          </button>
        )}
        <button type="button" class="secondary" onClick={() => void downloadLog(id).catch((err: unknown) => setError(errorText(err)))}>
          Download log
        </button>
      </div>
      {(task.review || task.status === 'pending_review') && <Review task={task} onDone={setTask} />}
      <h2>Output</h2>
      {outputError && <Notice kind="error">{outputError}</Notice>}
      {task.outputExpiredAt && <Notice kind="info">The output was removed by the server's retention at {when(task.outputExpiredAt)}.</Notice>}
      <OutputView log={log} version={version} label={`Output of task ${task.id}`} />
      {script !== undefined && (
        <details class="script-box">
          <summary>Script</summary>
          <pre class="script">{script}</pre>
        </details>
      )}
    </>
  );
}
