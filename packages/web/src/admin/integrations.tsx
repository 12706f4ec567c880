/** Tokens (service accounts and personal), webhooks and runbook sources. */
import { ROLES, Routes, WEBHOOK_EVENTS, type Role, type WebhookEvent, type WebhookFormat } from '@ferry/protocol';
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { useCall, type Call } from './api';
import { Ago, ConfirmButton, CopyBox, Empty, ErrorNotice, Field, Loading, TableWrap, useAction, useLoad } from './ui';

export function TokensSection(): JSX.Element {
  const call = useCall();
  const tokens = useLoad(() => call(Routes.listTokens), []);
  const revoke = useAction(async (id: string) => {
    await call(Routes.revokeToken, { params: { token: id } });
    tokens.reload();
  });
  const live = (tokens.data?.tokens ?? []).filter((t) => t.revokedAt === null);
  return (
    <section aria-labelledby="tokens-title" class="admin-subsection">
      <h2 id="tokens-title">Tokens</h2>
      <p>API tokens for scripts and the CLI: a service account's (its own name and role) or another one of yours.</p>
      <ErrorNotice problem={tokens.problem} title="Could not list the tokens" />
      {tokens.loading && !tokens.data ? <Loading what="tokens" /> : null}
      {tokens.data && live.length === 0 ? <Empty>No live tokens.</Empty> : null}
      {live.length > 0 ? (
        <TableWrap label="Tokens">
          <table class="admin-table">
            <caption class="visually-hidden">Tokens</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Acts as</th>
                <th scope="col">Role</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {live.map((t) => (
                <tr key={t.id}>
                  <th scope="row">{t.name}</th>
                  <td>
                    {t.principal} ({t.principalKind === 'service' ? 'service account' : 'person'})
                  </td>
                  <td>{t.role}</td>
                  <td>
                    <Ago at={t.createdAt} />
                  </td>
                  <td>{t.expiresAt ? <time dateTime={t.expiresAt}>{t.expiresAt.slice(0, 10)}</time> : 'never'}</td>
                  <td>
                    <Ago at={t.lastUsedAt} />
                  </td>
                  <td>
                    <ConfirmButton
                      label={`Revoke ${t.name}`}
                      confirmLabel="Revoke token"
                      question={`Revoke ${t.name}? It stops working at once.`}
                      onConfirm={() => revoke.act(t.id)}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
      <ErrorNotice problem={revoke.problem} title="Could not revoke the token" />
      <CreateTokenForm call={call} onCreated={tokens.reload} />
    </section>
  );
}

function CreateTokenForm({ call, onCreated }: { call: Call; onCreated: () => void }): JSX.Element {
  const [name, setName] = useState('');
  const [kind, setKind] = useState<'service' | 'personal'>('service');
  const [role, setRole] = useState<Role>('operator');
  const [days, setDays] = useState('');
  const [made, setMade] = useState<{ name: string; token: string } | null>(null);
  const create = useAction(async () => {
    setMade(null);
    const d = days.trim() === '' ? undefined : Math.round(Number(days) * 86400);
    const res = await call(Routes.createToken, {
      body: { name: name.trim(), ...(kind === 'service' ? { role } : { personal: true }), ...(d !== undefined ? { expiresInSeconds: d } : {}) },
    });
    setMade({ name: res.name, token: res.token });
    setName('');
    onCreated();
  });
  return (
    <form
      class="admin-form"
      aria-labelledby="new-token-title"
      onSubmit={(e) => {
        e.preventDefault();
        void create.act();
      }}
    >
      <h3 id="new-token-title">New token</h3>
      <Field label="Name">{(id) => <input id={id} required autoComplete="off" value={name} onInput={(e) => setName(e.currentTarget.value)} />}</Field>
      <fieldset class="admin-fieldset">
        <legend>For</legend>
        <label class="admin-radio">
          <input type="radio" name="token-kind" checked={kind === 'service'} onChange={() => setKind('service')} /> a new service account
        </label>
        <label class="admin-radio">
          <input type="radio" name="token-kind" checked={kind === 'personal'} onChange={() => setKind('personal')} /> me (acts as you, with your role)
        </label>
      </fieldset>
      {kind === 'service' ? (
        <Field label="Role" hint="Never above your own.">
          {(id, hint) => (
            <select id={id} aria-describedby={hint} value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          )}
        </Field>
      ) : null}
      <Field label="Expires after (days; empty: never)">
        {(id) => <input id={id} inputMode="numeric" value={days} onInput={(e) => setDays(e.currentTarget.value)} />}
      </Field>
      <ErrorNotice problem={create.problem} title="Could not create the token" />
      <button type="submit" disabled={create.busy}>
        Create token
      </button>
      {made ? (
        <div class="admin-result" role="status">
          <p>Token {made.name} is shown only now: copy it. The server keeps only its hash.</p>
          <CopyBox label={`Token ${made.name}`} value={made.token} />
        </div>
      ) : null}
    </form>
  );
}

export function WebhooksSection(): JSX.Element {
  const call = useCall();
  const hooks = useLoad(() => call(Routes.listWebhooks), []);
  const [shown, setShown] = useState<string | null>(null);
  const del = useAction(async (id: string) => {
    await call(Routes.deleteWebhook, { params: { id } });
    hooks.reload();
  });
  const list = hooks.data?.webhooks ?? [];
  return (
    <section aria-labelledby="webhooks-title" class="admin-subsection">
      <h2 id="webhooks-title">Webhooks</h2>
      <p>Signed HTTPS calls when tasks wait for review, are approved or rejected, or finish.</p>
      <ErrorNotice problem={hooks.problem} title="Could not list the webhooks" />
      {hooks.loading && !hooks.data ? <Loading what="webhooks" /> : null}
      {hooks.data && list.length === 0 ? <Empty>No webhooks.</Empty> : null}
      {list.map((w) => (
        <article key={w.id} class="admin-card" aria-labelledby={`hook-${w.id}`}>
          <h3 id={`hook-${w.id}`}>{w.url}</h3>
          <p>
            {w.events.join(', ')} · {w.format} · by {w.createdBy}, <Ago at={w.createdAt} />
          </p>
          <div class="admin-buttons">
            <button type="button" aria-expanded={shown === w.id} onClick={() => setShown(shown === w.id ? null : w.id)}>
              {shown === w.id ? 'Hide deliveries' : 'Deliveries'}
            </button>
            <ConfirmButton
              label={`Delete webhook ${w.url}`}
              confirmLabel="Delete webhook"
              question={`Delete the webhook to ${w.url}?`}
              onConfirm={() => del.act(w.id)}
            />
          </div>
          {shown === w.id ? <Deliveries call={call} id={w.id} /> : null}
        </article>
      ))}
      <ErrorNotice problem={del.problem} title="Could not delete the webhook" />
      <CreateWebhookForm call={call} onCreated={hooks.reload} />
    </section>
  );
}

function Deliveries({ call, id }: { call: Call; id: string }): JSX.Element {
  const deliveries = useLoad(() => call(Routes.listWebhookDeliveries, { params: { id }, query: { limit: 20 } }), [id]);
  const list = deliveries.data?.deliveries ?? [];
  return (
    <div>
      <ErrorNotice problem={deliveries.problem} title="Could not list the deliveries" />
      {deliveries.loading && !deliveries.data ? <Loading what="deliveries" /> : null}
      {deliveries.data && list.length === 0 ? <Empty>Nothing delivered yet.</Empty> : null}
      {list.length > 0 ? (
        <ul class="admin-list">
          {list.map((d) => {
            const last = d.attempts[d.attempts.length - 1];
            return (
              <li key={d.id}>
                <code>{d.event}</code> for {d.taskId}: {d.status}
                {last ? ` (last attempt: ${last.httpStatus ?? last.error ?? 'no answer'}, ${last.durationMs} ms)` : ''}
                {d.nextAttemptAt ? `; next try ${d.nextAttemptAt}` : ''}
              </li>
            );
          })}
        </ul>
      ) : null}
    </div>
  );
}

function CreateWebhookForm({ call, onCreated }: { call: Call; onCreated: () => void }): JSX.Element {
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<WebhookEvent[]>(['task.finished']);
  const [format, setFormat] = useState<WebhookFormat>('json');
  const [secret, setSecret] = useState<string | null>(null);
  const create = useAction(async () => {
    setSecret(null);
    const res = await call(Routes.createWebhook, { body: { url: url.trim(), events, format } });
    setSecret(res.secret);
    setUrl('');
    onCreated();
  });
  return (
    <form
      class="admin-form"
      aria-labelledby="new-hook-title"
      onSubmit={(e) => {
        e.preventDefault();
        void create.act();
      }}
    >
      <h3 id="new-hook-title">New webhook</h3>
      <Field label="URL (https://)">{(id) => <input id={id} type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />}</Field>
      <fieldset class="admin-fieldset">
        <legend>Events</legend>
        {WEBHOOK_EVENTS.map((ev) => (
          <label key={ev} class="admin-check">
            <input
              type="checkbox"
              checked={events.includes(ev)}
              onChange={(e) => setEvents(e.currentTarget.checked ? [...events, ev] : events.filter((x) => x !== ev))}
            />{' '}
            {ev}
          </label>
        ))}
      </fieldset>
      <Field label="Format">
        {(id) => (
          <select id={id} value={format} onChange={(e) => setFormat(e.currentTarget.value as WebhookFormat)}>
            <option value="json">json (signed, for your own receiver)</option>
            <option value="slack">slack (an incoming-webhook message)</option>
          </select>
        )}
      </Field>
      <ErrorNotice problem={create.problem} title="Could not create the webhook" />
      <button type="submit" disabled={create.busy || events.length === 0}>
        Create webhook
      </button>
      {secret ? (
        <div class="admin-result" role="status">
          <p>The signing secret is shown only now: the receiver checks each call's signature with it.</p>
          <CopyBox label="Signing secret" value={secret} />
        </div>
      ) : null}
    </form>
  );
}

export function RunbookSourcesSection(): JSX.Element {
  const call = useCall();
  const sources = useLoad(() => call(Routes.listRunbookSources), []);
  const [synced, setSynced] = useState<string | null>(null);
  const sync = useAction(async (name: string) => {
    setSynced(null);
    const res = await call(Routes.syncRunbookSource, { params: { name } });
    setSynced(res.lastError ? `${name}: ${res.lastError}` : `${name} synced at commit ${res.commit?.slice(0, 12) ?? '?'}: ${res.runbooks} runbooks.`);
    sources.reload();
  });
  const list = sources.data?.sources ?? [];
  return (
    <section aria-labelledby="sources-title" class="admin-subsection">
      <h2 id="sources-title">Runbook sources</h2>
      <p>Git repositories whose files are runbooks: scripts with parameters that anyone may run on the targets they operate.</p>
      <ErrorNotice problem={sources.problem} title="Could not list the runbook sources" />
      {sources.loading && !sources.data ? <Loading what="runbook sources" /> : null}
      {sources.data && list.length === 0 ? <Empty>No runbook sources.</Empty> : null}
      {list.length > 0 ? (
        <TableWrap label="Runbook sources">
          <table class="admin-table">
            <caption class="visually-hidden">Runbook sources</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Repository</th>
                <th scope="col">Commit</th>
                <th scope="col">Runbooks</th>
                <th scope="col">Synced</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((s) => (
                <tr key={s.name}>
                  <th scope="row">{s.name}</th>
                  <td>
                    <code>{s.git}</code> {s.ref}
                    {s.path ? ` /${s.path}` : ''}
                  </td>
                  <td>{s.commit ? <code>{s.commit.slice(0, 12)}</code> : 'none'}</td>
                  <td>{s.runbooks}</td>
                  <td>
                    <Ago at={s.syncedAt} />
                    {s.lastError ? <p class="admin-bad">{s.lastError}</p> : null}
                  </td>
                  <td>
                    <button type="button" disabled={sync.busy} onClick={() => void sync.act(s.name)} aria-label={`Sync ${s.name}`}>
                      Sync
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
      <ErrorNotice problem={sync.problem} title="Could not sync" />
      {synced ? <p role="status">{synced}</p> : null}
      <AddSourceForm call={call} onAdded={sources.reload} />
    </section>
  );
}

function AddSourceForm({ call, onAdded }: { call: Call; onAdded: () => void }): JSX.Element {
  const [name, setName] = useState('');
  const [git, setGit] = useState('');
  const [ref, setRef] = useState('');
  const [path, setPath] = useState('');
  const add = useAction(async () => {
    await call(Routes.addRunbookSource, {
      body: { name: name.trim(), git: git.trim(), ...(ref.trim() ? { ref: ref.trim() } : {}), ...(path.trim() ? { path: path.trim() } : {}) },
    });
    setName('');
    setGit('');
    onAdded();
  });
  return (
    <form
      class="admin-form"
      aria-labelledby="new-source-title"
      onSubmit={(e) => {
        e.preventDefault();
        void add.act();
      }}
    >
      <h3 id="new-source-title">Add a runbook source</h3>
      <Field label="Name">{(id) => <input id={id} required autoComplete="off" value={name} onInput={(e) => setName(e.currentTarget.value)} />}</Field>
      <Field label="Git repository" hint="https://…, ssh://…, user@host:path, or a path on the server">
        {(id, hint) => <input id={id} aria-describedby={hint} required value={git} onInput={(e) => setGit(e.currentTarget.value)} />}
      </Field>
      <Field label="Ref (empty: HEAD)">{(id) => <input id={id} value={ref} onInput={(e) => setRef(e.currentTarget.value)} />}</Field>
      <Field label="Folder (empty: the top)">{(id) => <input id={id} value={path} onInput={(e) => setPath(e.currentTarget.value)} />}</Field>
      <ErrorNotice problem={add.problem} title="Could not add the source" />
      <button type="submit" disabled={add.busy}>
        Add and sync
      </button>
    </form>
  );
}
