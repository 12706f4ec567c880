/**
 * Targets: the list, a form to create one, and a target's own page to edit its network, limits,
 * redaction, review rule, settings and grants. Names of secrets are on the Secrets page.
 */
import {
  defaultNetwork,
  MAX_APPROVALS,
  REVIEW_RULES,
  Routes,
  TARGET_TYPES,
  TARGET_TYPE_INFO,
  type GroupInfo,
  type NetworkPolicy,
  type RedactLevel,
  type ReviewPolicyRequest,
  type ReviewRule,
  type Target,
  type TargetLimits,
  type TargetType,
} from '@ferry/protocol';
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { navigate } from '../lib/router';
import { useCall, useIsAdmin, type Call } from './api';
import { AdminOnly, ConfirmButton, Empty, ErrorNotice, Field, Link, Loading, TableWrap, useAction, useLoad } from './ui';
import { secretsHref, targetHref } from './paths';

const MIB = 1024 * 1024;

function reviewText(t: Target): string {
  const r = t.review;
  if (!r || r.rule === 'none') return 'none';
  const who = r.rule === 'group' ? `group ${r.group ?? '?'}` : 'anyone else';
  return `${r.approvals} approval${r.approvals === 1 ? '' : 's'} by ${who}`;
}

function keyText(t: Target): string {
  if (!t.keyId) return 'no key yet (an agent makes one when it first serves the target)';
  if (t.keyHolders.length === 0) return 'no agent holds the key';
  return t.keyHolders.map((h) => `${h.name}${h.online ? '' : ' (offline)'}`).join(', ');
}

export function TargetsPage(): JSX.Element {
  const call = useCall();
  const admin = useIsAdmin();
  const list = useLoad(() => call(Routes.listTargets), []);
  const targets = list.data?.targets ?? [];
  return (
    <section class="admin-page" aria-labelledby="targets-title">
      <h1 id="targets-title">Targets</h1>
      <p>What tasks run against. Admins create and edit them; grants give a group a role on one.</p>
      <ErrorNotice problem={list.problem} title="Could not list the targets" />
      {list.loading && !list.data ? <Loading what="targets" /> : null}
      {list.data && targets.length === 0 ? <Empty>{admin ? 'No targets yet. Create the first one below.' : 'No targets you may see yet.'}</Empty> : null}
      {targets.length > 0 ? (
        <TableWrap label="Targets">
          <table class="admin-table">
            <caption class="visually-hidden">Targets</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Agents</th>
                <th scope="col">Network</th>
                <th scope="col">Review</th>
                <th scope="col">Online</th>
                <th scope="col">Secrets</th>
              </tr>
            </thead>
            <tbody>
              {targets.map((t) => (
                <tr key={t.id}>
                  <th scope="row">
                    <Link href={targetHref(t.name)}>{t.name}</Link>
                  </th>
                  <td>{t.type}</td>
                  <td>{t.agent}</td>
                  <td>{t.network}</td>
                  <td>{reviewText(t)}</td>
                  <td>{t.agentsOnline}</td>
                  <td>
                    <Link href={secretsHref(t.name)} label={`Secrets of ${t.name}`}>
                      Secrets
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
      {admin ? <CreateTargetForm call={call} onCreated={list.reload} /> : <AdminOnly what="Creating targets" />}
    </section>
  );
}

/** Whole numbers from a text field; empty means "not given". */
function numberOrUndefined(text: string, scale = 1): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  const n = Number(trimmed);
  return Number.isFinite(n) ? Math.round(n * scale) : NaN;
}

interface LimitsText {
  timeout: string;
  output: string;
  processes: string;
  memory: string;
}

function limitsFrom(text: LimitsText): TargetLimits {
  const limits: TargetLimits = {};
  const timeout = numberOrUndefined(text.timeout);
  const output = numberOrUndefined(text.output, MIB);
  const processes = numberOrUndefined(text.processes);
  const memory = numberOrUndefined(text.memory, MIB);
  if (timeout !== undefined) limits.timeoutSeconds = timeout;
  if (output !== undefined) limits.maxOutputBytes = output;
  if (processes !== undefined) limits.maxProcesses = processes;
  if (memory !== undefined) limits.memoryBytes = memory;
  return limits;
}

function LimitFields({ value, onChange, placeholders }: { value: LimitsText; onChange: (v: LimitsText) => void; placeholders?: LimitsText }): JSX.Element {
  const set = (k: keyof LimitsText) => (e: Event) => onChange({ ...value, [k]: (e.currentTarget as HTMLInputElement).value });
  return (
    <fieldset class="admin-fieldset">
      <legend>Limits (empty: the server's default)</legend>
      <Field label="Timeout (seconds)">
        {(id) => <input id={id} inputMode="numeric" value={value.timeout} placeholder={placeholders?.timeout} onInput={set('timeout')} />}
      </Field>
      <Field label="Output cap (MiB)">
        {(id) => <input id={id} inputMode="decimal" value={value.output} placeholder={placeholders?.output} onInput={set('output')} />}
      </Field>
      <Field label="Processes">
        {(id) => <input id={id} inputMode="numeric" value={value.processes} placeholder={placeholders?.processes} onInput={set('processes')} />}
      </Field>
      <Field label="Memory (MiB)">
        {(id) => <input id={id} inputMode="numeric" value={value.memory} placeholder={placeholders?.memory} onInput={set('memory')} />}
      </Field>
    </fieldset>
  );
}

interface ReviewText {
  rule: ReviewRule;
  group: string;
  approvals: string;
  expiryHours: string;
}

function reviewFrom(r: ReviewText): ReviewPolicyRequest {
  if (r.rule === 'none') return { rule: 'none' };
  const approvals = numberOrUndefined(r.approvals);
  const expiry = numberOrUndefined(r.expiryHours, 3600);
  return {
    rule: r.rule,
    ...(r.rule === 'group' ? { group: r.group.trim() } : {}),
    ...(approvals !== undefined ? { approvals } : {}),
    ...(expiry !== undefined ? { expirySeconds: expiry } : {}),
  };
}

function ReviewFields({ value, onChange, groups }: { value: ReviewText; onChange: (v: ReviewText) => void; groups: readonly string[] }): JSX.Element {
  const set = (k: keyof ReviewText) => (e: Event) => onChange({ ...value, [k]: (e.currentTarget as HTMLInputElement | HTMLSelectElement).value });
  return (
    <fieldset class="admin-fieldset">
      <legend>Review before a task runs</legend>
      <Field label="Rule" hint="any: someone other than the author approves; group: a member of the group does.">
        {(id, hint) => (
          <select id={id} aria-describedby={hint} value={value.rule} onChange={set('rule')}>
            {REVIEW_RULES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        )}
      </Field>
      {value.rule === 'group' ? (
        <Field label="Reviewing group">
          {(id) => (
            <select id={id} value={value.group} onChange={set('group')}>
              <option value="">(choose a group)</option>
              {groups.map((g) => (
                <option key={g} value={g}>
                  {g}
                </option>
              ))}
            </select>
          )}
        </Field>
      ) : null}
      {value.rule !== 'none' ? (
        <>
          <Field label={`Approvals needed (1-${MAX_APPROVALS})`}>
            {(id) => <input id={id} inputMode="numeric" value={value.approvals} placeholder="1" onInput={set('approvals')} />}
          </Field>
          <Field label="Expires after (hours)">
            {(id) => <input id={id} inputMode="numeric" value={value.expiryHours} placeholder="24" onInput={set('expiryHours')} />}
          </Field>
        </>
      ) : null}
    </fieldset>
  );
}

const NO_LIMITS: LimitsText = { timeout: '', output: '', processes: '', memory: '' };

function CreateTargetForm({ call, onCreated }: { call: Call; onCreated: () => void }): JSX.Element {
  const [name, setName] = useState('');
  const [type, setType] = useState<TargetType>('shell');
  const [agent, setAgent] = useState<'hosted' | 'self-hosted'>('hosted');
  const [network, setNetwork] = useState<'' | NetworkPolicy>('');
  const [redact, setRedact] = useState<RedactLevel>('secrets');
  const [limits, setLimits] = useState<LimitsText>(NO_LIMITS);
  const [review, setReview] = useState<ReviewText>({ rule: 'none', group: '', approvals: '', expiryHours: '' });
  const [created, setCreated] = useState<string | null>(null);
  const groups = useLoad(() => call(Routes.listGroups).catch(() => ({ groups: [] as GroupInfo[] })), []);
  const create = useAction(async () => {
    const target = await call(Routes.createTarget, {
      body: {
        name: name.trim(),
        type,
        agent,
        ...(network ? { network } : {}),
        redact,
        limits: limitsFrom(limits),
        ...(review.rule !== 'none' ? { review: reviewFrom(review) } : {}),
      },
    });
    setCreated(target.name);
    setName('');
    onCreated();
  });
  return (
    <form
      class="admin-form"
      aria-labelledby="create-target-title"
      onSubmit={(e) => {
        e.preventDefault();
        void create.act();
      }}
    >
      <h2 id="create-target-title">New target</h2>
      <Field label="Name" hint="lower-case letters, digits, '.', '_' and '-'">
        {(id, hint) => <input id={id} aria-describedby={hint} required value={name} autoComplete="off" onInput={(e) => setName(e.currentTarget.value)} />}
      </Field>
      <Field label="Type" hint={TARGET_TYPE_INFO[type].description}>
        {(id, hint) => (
          <select id={id} aria-describedby={hint} value={type} onChange={(e) => setType(e.currentTarget.value as TargetType)}>
            {TARGET_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Agents" hint="hosted: the server's pool runs its tasks; self-hosted: agents you start inside your network with a join token.">
        {(id, hint) => (
          <select id={id} aria-describedby={hint} value={agent} onChange={(e) => setAgent(e.currentTarget.value as 'hosted' | 'self-hosted')}>
            <option value="hosted">hosted</option>
            <option value="self-hosted">self-hosted</option>
          </select>
        )}
      </Field>
      <Field label="Network" hint={`default for a ${agent} ${type} target: ${defaultNetwork(type, agent)}`}>
        {(id, hint) => (
          <select id={id} aria-describedby={hint} value={network} onChange={(e) => setNetwork(e.currentTarget.value as '' | NetworkPolicy)}>
            <option value="">default ({defaultNetwork(type, agent)})</option>
            <option value="none">none (private loopback only)</option>
            <option value="public">public (the internet only: no private, loopback or link-local addresses)</option>
            <option value="host">host (the agent host's network; self-hosted agents, or where the server allows it)</option>
          </select>
        )}
      </Field>
      <Field label="Redaction of stored output">
        {(id) => (
          <select id={id} value={redact} onChange={(e) => setRedact(e.currentTarget.value as RedactLevel)}>
            <option value="secrets">secrets (known secret formats)</option>
            <option value="all">all (also personal data)</option>
            <option value="none">none</option>
          </select>
        )}
      </Field>
      <LimitFields value={limits} onChange={setLimits} />
      <ReviewFields value={review} onChange={setReview} groups={(groups.data?.groups ?? []).map((g) => g.name)} />
      {TARGET_TYPE_INFO[type].required.length > 0 ? (
        <p class="admin-hint">
          Tasks of this type need the secrets {TARGET_TYPE_INFO[type].required.join(', ')}: set them on the target's Secrets page after creating it.
        </p>
      ) : null}
      <ErrorNotice problem={create.problem} title="Could not create the target" />
      <button type="submit" disabled={create.busy}>
        Create target
      </button>
      {created ? (
        <p role="status">
          Created <Link href={targetHref(created)}>{created}</Link>. <Link href={secretsHref(created)}>Set its secrets</Link>.
        </p>
      ) : null}
    </form>
  );
}

function limitsText(t: Target): LimitsText {
  return {
    timeout: String(t.limits.timeoutSeconds),
    output: String(Math.round((t.limits.maxOutputBytes / MIB) * 100) / 100),
    processes: String(t.limits.maxProcesses),
    memory: String(Math.round(t.limits.memoryBytes / MIB)),
  };
}

function reviewTextOf(t: Target): ReviewText {
  const r = t.review;
  return {
    rule: r?.rule ?? 'none',
    group: r?.group ?? '',
    approvals: r && r.rule !== 'none' ? String(r.approvals) : '',
    expiryHours: r && r.rule !== 'none' ? String(Math.round((r.expirySeconds / 3600) * 100) / 100) : '',
  };
}

/** One target: what it is, its settings to edit, and which groups have which role on it. */
export function TargetPage({ name }: { name: string }): JSX.Element {
  const call = useCall();
  const admin = useIsAdmin();
  const target = useLoad(() => call(Routes.getTarget, { params: { name } }), [name]);
  // Groups (and so grants) are the admins' to see.
  const groups = useLoad(() => (admin ? call(Routes.listGroups) : Promise.resolve({ groups: [] })), [name, admin]);
  return (
    <section class="admin-page" aria-labelledby="target-title">
      <p>
        <Link href="/ui/targets">← Targets</Link>
      </p>
      <h1 id="target-title">Target {name}</h1>
      <ErrorNotice problem={target.problem} title="Could not load the target" />
      {target.loading && !target.data ? <Loading what="the target" /> : null}
      {target.data ? (
        <>
          <dl class="admin-facts">
            <dt>Type</dt>
            <dd>{target.data.type}</dd>
            <dt>Agents</dt>
            <dd>
              {target.data.agent}, {target.data.agentsOnline} online
            </dd>
            <dt>Sealing key</dt>
            <dd>{keyText(target.data)}</dd>
            <dt>Secrets</dt>
            <dd>
              <Link href={secretsHref(name)}>Secrets of {name}</Link>
            </dd>
          </dl>
          {admin ? (
            <>
              <EditTargetForm
                key={target.data.id}
                call={call}
                target={target.data}
                groups={(groups.data?.groups ?? []).map((g) => g.name)}
                onSaved={target.reload}
              />
              <Grants call={call} target={name} groups={groups.data?.groups} problem={groups.problem} onChange={groups.reload} />
              <DeleteTarget call={call} name={name} />
            </>
          ) : (
            <AdminOnly what="Changing a target" />
          )}
        </>
      ) : null}
    </section>
  );
}

function EditTargetForm({ call, target, groups, onSaved }: { call: Call; target: Target; groups: readonly string[]; onSaved: () => void }): JSX.Element {
  const [network, setNetwork] = useState<NetworkPolicy>(target.network);
  const [redact, setRedact] = useState<RedactLevel>(target.redact);
  const [limits, setLimits] = useState<LimitsText>(limitsText(target));
  const [review, setReview] = useState<ReviewText>(reviewTextOf(target));
  const [settings, setSettings] = useState(
    Object.entries(target.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n'),
  );
  const [saved, setSaved] = useState(false);
  const save = useAction(async () => {
    setSaved(false);
    const wanted = parseSettings(settings);
    const patch: Record<string, string | null> = { ...wanted };
    for (const k of Object.keys(target.settings)) if (!(k in wanted)) patch[k] = null;
    await call(Routes.updateTarget, {
      params: { name: target.name },
      body: { network, redact, limits: limitsFrom(limits), settings: patch, review: reviewFrom(review) },
    });
    setSaved(true);
    onSaved();
  });
  return (
    <form
      class="admin-form"
      aria-labelledby="edit-target-title"
      onSubmit={(e) => {
        e.preventDefault();
        void save.act();
      }}
    >
      <h2 id="edit-target-title">Settings</h2>
      <Field label="Network">
        {(id) => (
          <select id={id} value={network} onChange={(e) => setNetwork(e.currentTarget.value as NetworkPolicy)}>
            <option value="none">none (private loopback only)</option>
            <option value="public">public (the internet only: no private, loopback or link-local addresses)</option>
            <option value="host">host (the agent host's network; self-hosted agents, or where the server allows it)</option>
          </select>
        )}
      </Field>
      <Field label="Redaction of stored output">
        {(id) => (
          <select id={id} value={redact} onChange={(e) => setRedact(e.currentTarget.value as RedactLevel)}>
            <option value="secrets">secrets (known secret formats)</option>
            <option value="all">all (also personal data)</option>
            <option value="none">none</option>
          </select>
        )}
      </Field>
      <LimitFields value={limits} onChange={setLimits} />
      <ReviewFields value={review} onChange={setReview} groups={groups} />
      <Field
        label="Plain settings (KEY=VALUE, one a line)"
        hint="Given to tasks as environment variables, shown in clear and never masked: secrets belong on the Secrets page."
      >
        {(id, hint) => <textarea id={id} aria-describedby={hint} rows={4} value={settings} onInput={(e) => setSettings(e.currentTarget.value)} />}
      </Field>
      <ErrorNotice problem={save.problem} title="Could not save" />
      <button type="submit" disabled={save.busy}>
        Save settings
      </button>
      {saved ? <p role="status">Saved.</p> : null}
    </form>
  );
}

/** `KEY=VALUE` lines; a line without `=` is sent as is so the server names the problem. */
function parseSettings(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const eq = line.indexOf('=');
    if (eq < 0) out[line.trim()] = '';
    else out[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return out;
}

function Grants({
  call,
  target,
  groups,
  problem,
  onChange,
}: {
  call: Call;
  target: string;
  groups: readonly GroupInfo[] | undefined;
  problem: { message: string; code?: string } | null;
  onChange: () => void;
}): JSX.Element {
  const [group, setGroup] = useState('');
  const [role, setRole] = useState<'operator' | 'viewer'>('viewer');
  const granted = (groups ?? []).flatMap((g) => g.grants.filter((x) => x.target === target).map((x) => ({ group: g.name, role: x.role })));
  const add = useAction(async () => {
    await call(Routes.grantTarget, { params: { name: target, group }, body: { role } });
    onChange();
  });
  const revoke = useAction(async (g: string) => {
    await call(Routes.revokeGrant, { params: { name: target, group: g } });
    onChange();
  });
  return (
    <section aria-labelledby="grants-title" class="admin-subsection">
      <h2 id="grants-title">Grants</h2>
      <p>A group granted a role on this target gives its members that role here (never more than their own).</p>
      <ErrorNotice problem={problem} title="Could not list the groups" />
      {groups && granted.length === 0 ? <Empty>No grants: only admins see this target.</Empty> : null}
      {granted.length > 0 ? (
        <ul class="admin-list">
          {granted.map((g) => (
            <li key={g.group}>
              <span>
                {g.group}: {g.role}
              </span>{' '}
              <ConfirmButton
                label={`Revoke ${g.group}'s grant`}
                confirmLabel="Revoke grant"
                question={`Revoke ${g.group}'s ${g.role} grant on ${target}?`}
                onConfirm={() => revoke.act(g.group)}
              />
            </li>
          ))}
        </ul>
      ) : null}
      <ErrorNotice problem={revoke.problem} title="Could not revoke the grant" />
      <form
        class="admin-form admin-inline"
        aria-label="Grant a group a role"
        onSubmit={(e) => {
          e.preventDefault();
          void add.act();
        }}
      >
        <Field label="Group">
          {(id) => (
            <select id={id} required value={group} onChange={(e) => setGroup(e.currentTarget.value)}>
              <option value="">(choose a group)</option>
              {(groups ?? []).map((g) => (
                <option key={g.name} value={g.name}>
                  {g.name}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Role">
          {(id) => (
            <select id={id} value={role} onChange={(e) => setRole(e.currentTarget.value as 'operator' | 'viewer')}>
              <option value="viewer">viewer (reads tasks and output)</option>
              <option value="operator">operator (also runs tasks)</option>
            </select>
          )}
        </Field>
        <button type="submit" disabled={add.busy || group === ''}>
          Grant
        </button>
      </form>
      <ErrorNotice problem={add.problem} title="Could not grant" />
    </section>
  );
}

function DeleteTarget({ call, name }: { call: Call; name: string }): JSX.Element {
  const del = useAction(async () => {
    await call(Routes.deleteTarget, { params: { name } });
    navigate('/ui/targets');
  });
  return (
    <section aria-labelledby="delete-target-title" class="admin-subsection">
      <h2 id="delete-target-title">Delete</h2>
      <p>
        Deleting a target stops its agents serving it, and its secrets go with it; its tasks and audit entries stay. A target with queued or running tasks is
        not deleted: cancel them first.
      </p>
      <ConfirmButton label={`Delete ${name}`} confirmLabel="Delete target" question={`Delete target ${name} and its secrets?`} onConfirm={() => del.act()} />
      <ErrorNotice problem={del.problem} title="Could not delete the target" />
    </section>
  );
}
