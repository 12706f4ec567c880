/**
 * The audit trail: newest first, filtered by actor, action, target and time, a page at a time;
 * and "verify the chain", which recomputes the log's hash chain on the server.
 */
import { Routes, type AuditEntry, type RouteQuery } from '@ferry/protocol';
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { useCall, useIsAdmin, type Call } from './api';
import { AdminOnly, Empty, ErrorNotice, Field, Loading, TableWrap, useAction, useLoad } from './ui';

const PAGE = 50;

interface Filters {
  actor: string;
  action: string;
  target: string;
  since: string;
  until: string;
}
const NO_FILTERS: Filters = { actor: '', action: '', target: '', since: '', until: '' };

/** A `datetime-local` value is the person's local time: send it as an instant. */
function instant(local: string): string | undefined {
  if (local === '') return undefined;
  const ms = Date.parse(local);
  return Number.isNaN(ms) ? local : new Date(ms).toISOString();
}

function query(f: Filters, before: number | undefined): NonNullable<RouteQuery<typeof Routes.listAudit>> {
  const q: NonNullable<RouteQuery<typeof Routes.listAudit>> = { limit: PAGE };
  if (f.actor.trim()) q.actor = f.actor.trim();
  if (f.action.trim()) q.action = f.action.trim();
  if (f.target.trim()) q.target = f.target.trim();
  const since = instant(f.since);
  const until = instant(f.until);
  if (since) q.since = since;
  if (until) q.until = until;
  if (before !== undefined) q.before = before;
  return q;
}

export function AuditPage(): JSX.Element {
  if (!useIsAdmin()) {
    return (
      <section class="admin-page" aria-labelledby="audit-title">
        <h1 id="audit-title">Audit</h1>
        <AdminOnly what="The audit trail" />
      </section>
    );
  }
  return <AuditLog />;
}

function AuditLog(): JSX.Element {
  const call = useCall();
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [applied, setApplied] = useState<Filters>(NO_FILTERS);
  // The cursors of the pages seen, so "Newer" can go back.
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]);
  const before = cursors[cursors.length - 1];
  const page = useLoad(() => call(Routes.listAudit, { query: query(applied, before) }), [applied, before]);
  const set = (k: keyof Filters) => (e: Event) => setDraft({ ...draft, [k]: (e.currentTarget as HTMLInputElement).value });
  const entries = page.data?.entries ?? [];
  const next = page.data?.nextBefore ?? null;
  return (
    <section class="admin-page" aria-labelledby="audit-title">
      <h1 id="audit-title">Audit</h1>
      <p>Every change and every task, in an append-only log whose entries are hash-chained.</p>
      <VerifyChain call={call} />
      <form
        class="admin-form admin-filters"
        aria-label="Filter the audit entries"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(draft);
          setCursors([undefined]);
        }}
      >
        <Field label="Actor contains">{(id) => <input id={id} value={draft.actor} placeholder="ada@example.com" onInput={set('actor')} />}</Field>
        <Field label="Action starts with">{(id) => <input id={id} value={draft.action} placeholder="secret." onInput={set('action')} />}</Field>
        <Field label="Target">{(id) => <input id={id} value={draft.target} placeholder="db-prod" onInput={set('target')} />}</Field>
        <Field label="From">{(id) => <input id={id} type="datetime-local" value={draft.since} onInput={set('since')} />}</Field>
        <Field label="Until">{(id) => <input id={id} type="datetime-local" value={draft.until} onInput={set('until')} />}</Field>
        <div class="admin-buttons">
          <button type="submit">Filter</button>
          <button
            type="button"
            onClick={() => {
              setDraft(NO_FILTERS);
              setApplied(NO_FILTERS);
              setCursors([undefined]);
            }}
          >
            Clear filters
          </button>
        </div>
      </form>
      <ErrorNotice problem={page.problem} title="Could not list the audit entries" />
      {page.loading && !page.data ? <Loading what="audit entries" /> : null}
      {page.data && entries.length === 0 ? <Empty>No audit entries match.</Empty> : null}
      {entries.length > 0 ? <AuditTable entries={entries} /> : null}
      <nav class="admin-pager" aria-label="Audit pages">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </button>
        <button type="button" disabled={next === null} onClick={() => next !== null && setCursors([...cursors, next])}>
          Older
        </button>
      </nav>
    </section>
  );
}

function AuditTable({ entries }: { entries: readonly AuditEntry[] }): JSX.Element {
  return (
    <TableWrap label="Audit entries, newest first">
      <table class="admin-table admin-audit">
        <caption class="visually-hidden">Audit entries, newest first</caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">When</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Subject</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => (
            <tr key={e.seq}>
              <td>{e.seq}</td>
              <td>
                <time dateTime={e.at}>{e.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>
              </td>
              <td>{e.actor}</td>
              <td>
                <code>{e.action}</code>
              </td>
              <td>{e.subject}</td>
              <td>{Object.keys(e.details).length > 0 ? <code class="admin-details">{JSON.stringify(e.details)}</code> : null}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function VerifyChain({ call }: { call: Call }): JSX.Element {
  const [result, setResult] = useState<{ ok: boolean; entries: number; brokenAt: number | null } | null>(null);
  const verify = useAction(async () => {
    setResult(null);
    setResult(await call(Routes.verifyAudit));
  });
  return (
    <div class="admin-verify">
      <button type="button" disabled={verify.busy} onClick={() => void verify.act()}>
        {verify.busy ? 'Verifying…' : 'Verify the chain'}
      </button>
      <ErrorNotice problem={verify.problem} title="Could not verify" />
      <div role="status" class="admin-verify-result">
        {result ? (
          result.ok ? (
            <p class="admin-ok">Audit log intact: {result.entries} entries, hash chain verified.</p>
          ) : (
            <p class="admin-bad">Audit log TAMPERED: the hash chain breaks at entry {result.brokenAt ?? '?'}.</p>
          )
        ) : null}
      </div>
    </div>
  );
}
