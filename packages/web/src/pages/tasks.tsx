/**
 * Tasks: the organization's tasks (those the person may see), newest first, live: the page asks
 * again every 2 s while it is visible, so new tasks and status changes appear without a reload.
 * Filters by target, status and person go in the address (`?target=&status=&person=`), so a
 * filtered list can be bookmarked and shared; pages of 50, "Older" continues after the last.
 */
import { TASK_STATUSES, type Target, type Task } from '@ferry/protocol';
import { useEffect, useState } from 'preact/hooks';
import { Notice } from '../components/form';
import { StatusBadge } from '../components/status';
import { api, errorText, Routes } from '../lib/api';
import { taskDuration, when, who } from '../lib/format';
import { navigate, onLinkClick } from '../lib/router';
import type { PageProps } from '../routes';

const PAGE = 50;
const REFRESH_MS = 2000;

function withQuery(changes: Record<string, string>, query: URLSearchParams): string {
  const q = new URLSearchParams(query);
  for (const [k, v] of Object.entries(changes)) {
    if (v) q.set(k, v);
    else q.delete(k);
  }
  const text = q.toString();
  return `/ui/tasks${text ? `?${text}` : ''}`;
}

export default function TasksPage({ query }: PageProps) {
  const target = query.get('target') ?? '';
  const status = query.get('status') ?? '';
  const person = query.get('person') ?? '';
  const before = query.get('before') ?? '';
  const [tasks, setTasks] = useState<Task[]>();
  const [targets, setTargets] = useState<Target[]>([]);
  const [personText, setPersonText] = useState(person);
  const [error, setError] = useState('');

  useEffect(() => {
    api
      .call(Routes.listTargets)
      .then((r) => setTargets(r.targets))
      .catch(() => undefined);
  }, []);

  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    const load = async (): Promise<void> => {
      try {
        const r = await api.call(Routes.listTasks, {
          query: {
            limit: PAGE,
            ...(target ? { target } : {}),
            ...(status ? { status: status as Task['status'] } : {}),
            ...(person ? { person } : {}),
            ...(before ? { before } : {}),
          },
        });
        if (stopped) return;
        setTasks(r.tasks);
        setError('');
      } catch (err) {
        if (!stopped) setError(errorText(err));
      }
      if (!stopped) timer = window.setTimeout(() => void load(), REFRESH_MS);
    };
    setTasks(undefined);
    void load();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [target, status, person, before]);

  const last = tasks?.at(-1);
  return (
    <>
      <h1>Tasks</h1>
      <form
        class="filters"
        aria-label="Filter tasks"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(withQuery({ person: personText.trim(), before: '' }, query));
        }}
      >
        <div>
          <label for="f-target">Target</label>
          <select id="f-target" value={target} onChange={(e) => navigate(withQuery({ target: e.currentTarget.value, before: '' }, query))}>
            <option value="">All targets</option>
            {targets.map((t) => (
              <option key={t.id} value={t.name}>
                {t.name}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="f-status">Status</label>
          <select id="f-status" value={status} onChange={(e) => navigate(withQuery({ status: e.currentTarget.value, before: '' }, query))}>
            <option value="">Any status</option>
            {TASK_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace(/_/g, ' ')}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="f-person">Person</label>
          <input id="f-person" type="search" placeholder="e-mail or account" value={personText} onInput={(e) => setPersonText(e.currentTarget.value)} />
        </div>
        <button type="submit" class="secondary">
          Filter
        </button>
        <a class="button" href="/ui/run" onClick={onLinkClick}>
          Run a task
        </a>
      </form>
      {error && <Notice kind="error">{error}</Notice>}
      {tasks === undefined ? (
        <p aria-live="polite">Loading…</p>
      ) : tasks.length === 0 ? (
        <p>No tasks{target || status || person ? ' match these filters' : ' yet'}.</p>
      ) : (
        <div class="table-wrap">
          <table aria-label="Tasks" aria-live="polite" aria-relevant="additions">
            <thead>
              <tr>
                <th scope="col">Task</th>
                <th scope="col">Target</th>
                <th scope="col">Status</th>
                <th scope="col" class="hide-narrow">
                  By
                </th>
                <th scope="col" class="hide-narrow">
                  Created
                </th>
                <th scope="col" class="hide-narrow">
                  Duration
                </th>
              </tr>
            </thead>
            <tbody>
              {tasks.map((t) => (
                <tr key={t.id} data-task={t.id}>
                  <td>
                    <a class="mono" href={`/ui/tasks/${encodeURIComponent(t.id)}`} onClick={onLinkClick}>
                      {t.id}
                    </a>
                  </td>
                  <td>{t.target}</td>
                  <td>
                    <StatusBadge status={t.status} />
                  </td>
                  <td class="hide-narrow">{who(t.createdBy)}</td>
                  <td class="hide-narrow">{when(t.createdAt)}</td>
                  <td class="hide-narrow">{taskDuration(t)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav class="actions" aria-label="Pages">
        {before && (
          <a href={withQuery({ before: '' }, query)} onClick={onLinkClick}>
            Newest
          </a>
        )}
        {last && tasks?.length === PAGE && (
          <a href={withQuery({ before: last.id }, query)} onClick={onLinkClick}>
            Older
          </a>
        )}
      </nav>
    </>
  );
}
