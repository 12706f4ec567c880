/**
 * Agents: which are online, when each was last heard from, its version, the targets it serves
 * and the keys it holds; revoking one (with what `--force` means for the last holder of a key);
 * and a join token for a new agent with the commands to start it, ready to copy.
 */
import { ApiError } from '@ferry/client';
import { Routes, agentInstallCommands, type AgentInfo } from '@ferry/protocol';
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { useCall, useIsAdmin, type Call } from './api';
import { AdminOnly, Ago, ConfirmButton, CopyBox, Empty, ErrorNotice, Field, Loading, type Problem, problemOf, TableWrap, useAction, useLoad } from './ui';

function statusOf(a: AgentInfo): string {
  return a.revoked ? 'revoked' : a.online ? 'online' : 'offline';
}

export function AgentsPage(): JSX.Element {
  const call = useCall();
  const admin = useIsAdmin();
  const agents = useLoad(() => call(Routes.listAgents), []);
  const list = agents.data?.agents ?? [];
  return (
    <section class="admin-page" aria-labelledby="agents-title">
      <h1 id="agents-title">Agents</h1>
      <p>Agents dial out to this server, claim tasks of the targets they serve and run each in a fresh sandbox.</p>
      <ErrorNotice problem={agents.problem} title="Could not list the agents" />
      {agents.loading && !agents.data ? <Loading what="agents" /> : null}
      {agents.data && list.length === 0 ? <Empty>No agents yet. Create a join token below and start one.</Empty> : null}
      {list.length > 0 ? (
        <TableWrap label="Agents">
          <table class="admin-table">
            <caption class="visually-hidden">Agents</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Last contact</th>
                <th scope="col">Version</th>
                <th scope="col">Host</th>
                <th scope="col">Serves</th>
                <th scope="col">Holds keys of</th>
                <th scope="col">Running</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((a) => (
                <tr key={a.id}>
                  <th scope="row">
                    {a.name}
                    <br />
                    <small>
                      <code>{a.id}</code>
                    </small>
                  </th>
                  <td>
                    <span class={`admin-badge admin-badge-${statusOf(a)}`}>{statusOf(a)}</span>
                  </td>
                  <td>
                    <Ago at={a.lastSeenAt} />
                  </td>
                  <td>{a.version}</td>
                  <td>{a.hostname}</td>
                  <td>{a.shared ? 'shared hosted pool' : a.hosted ? 'hosted pool' : a.targets.join(', ') || '-'}</td>
                  <td>{a.holdsKeys.join(', ') || '-'}</td>
                  <td>{a.runningTasks}</td>
                  <td>
                    {a.revoked || !admin ? null : a.shared ? (
                      <small>The instance's: its administrators revoke it (ferry agent revoke).</small>
                    ) : (
                      <RevokeAgent call={call} agent={a} onRevoked={agents.reload} />
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
      {admin ? <JoinTokenForm call={call} /> : <AdminOnly what="Adding and revoking agents" />}
    </section>
  );
}

/**
 * Revoking the only agent that holds a target's sealing key loses the key, and with it every
 * secret of the target. The server refuses that (FERRY_E_LAST_KEY_HOLDER) unless forced; this
 * says so before and after, and offers the forced revoke only then.
 */
function RevokeAgent({ call, agent, onRevoked }: { call: Call; agent: AgentInfo; onRevoked: () => void }): JSX.Element {
  const [lastHolder, setLastHolder] = useState<{ problem: Problem; targets: string[] } | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const revoke = async (force: boolean): Promise<void> => {
    setProblem(null);
    try {
      await call(Routes.revokeAgent, { params: { id: agent.id }, query: { force: force ? 'true' : 'false' } });
      setLastHolder(null);
      onRevoked();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'FERRY_E_LAST_KEY_HOLDER') {
        const targets = Array.isArray(err.details?.targets) ? err.details.targets.map(String) : agent.holdsKeys;
        setLastHolder({ problem: problemOf(err), targets });
      } else setProblem(problemOf(err));
    }
  };
  const question =
    agent.holdsKeys.length > 0
      ? `Revoke ${agent.name}? It holds the sealing key of ${agent.holdsKeys.join(', ')}; if no other agent holds it, the server will refuse.`
      : `Revoke ${agent.name}? It stops at its next contact.`;
  return (
    <div class="admin-revoke">
      <ConfirmButton label={`Revoke ${agent.name}`} confirmLabel="Revoke agent" question={question} onConfirm={() => revoke(false)} />
      <ErrorNotice problem={problem} title="Could not revoke" />
      {lastHolder ? (
        <div class="admin-warning" role="alert">
          <ErrorNotice problem={lastHolder.problem} />
          <p>
            {agent.name} is the only agent holding the key of {lastHolder.targets.join(', ')}. Better: start another agent for{' '}
            {lastHolder.targets.length === 1 ? 'that target' : 'those targets'} first (it receives the key from this one), then revoke. Revoking anyway (the
            CLI's <code>--force</code>) loses the key: nobody can open those secrets again, and you must make a new key (
            <code>ferry target rotate-key NAME --discard-secrets</code>) and set every secret again.
          </p>
          <ConfirmButton
            label="Revoke anyway and lose the key"
            confirmLabel="Revoke and lose the key"
            question={`Lose the secrets of ${lastHolder.targets.join(', ')}?`}
            onConfirm={() => revoke(true)}
          />
        </div>
      ) : null}
    </div>
  );
}

type TokenKind = 'targets' | 'hosted' | 'shared';

function JoinTokenForm({ call }: { call: Call }): JSX.Element {
  const targets = useLoad(() => call(Routes.listTargets), []);
  const selfHosted = (targets.data?.targets ?? []).filter((t) => t.agent === 'self-hosted');
  const [kind, setKind] = useState<TokenKind>('targets');
  const [chosen, setChosen] = useState<string[]>([]);
  const [ttlHours, setTtlHours] = useState('24');
  const [made, setMade] = useState<{ id: string; token: string; expiresAt: string } | null>(null);
  const create = useAction(async () => {
    setMade(null);
    const hours = Number(ttlHours);
    const res = await call(Routes.createJoinToken, {
      body: {
        hosted: kind !== 'targets',
        ...(kind === 'shared' ? { shared: true } : {}),
        targets: kind === 'targets' ? chosen : [],
        ttlSeconds: Number.isFinite(hours) ? Math.round(hours * 3600) : NaN,
      },
    });
    setMade(res);
  });
  const commands = made ? agentInstallCommands(made.token) : null;
  return (
    <form
      class="admin-form"
      aria-labelledby="join-title"
      onSubmit={(e) => {
        e.preventDefault();
        void create.act();
      }}
    >
      <h2 id="join-title">Add an agent</h2>
      <p>A join token works once. It carries this server's address and its certificate's fingerprint, so the agent trusts only this server.</p>
      <fieldset class="admin-fieldset">
        <legend>The agent serves</legend>
        <label class="admin-radio">
          <input type="radio" name="join-kind" value="targets" checked={kind === 'targets'} onChange={() => setKind('targets')} /> chosen self-hosted targets
        </label>
        <label class="admin-radio">
          <input type="radio" name="join-kind" value="hosted" checked={kind === 'hosted'} onChange={() => setKind('hosted')} /> this organization's hosted pool
        </label>
        <label class="admin-radio">
          <input type="radio" name="join-kind" value="shared" checked={kind === 'shared'} onChange={() => setKind('shared')} /> the pool every organization
          shares (instance administrators)
        </label>
      </fieldset>
      {kind === 'targets' ? (
        <fieldset class="admin-fieldset">
          <legend>Targets</legend>
          <ErrorNotice problem={targets.problem} title="Could not list the targets" />
          {targets.data && selfHosted.length === 0 ? <Empty>No self-hosted targets: create a target with agents "self-hosted" first.</Empty> : null}
          {selfHosted.map((t) => (
            <label key={t.id} class="admin-check">
              <input
                type="checkbox"
                checked={chosen.includes(t.name)}
                onChange={(e) => setChosen(e.currentTarget.checked ? [...chosen, t.name] : chosen.filter((n) => n !== t.name))}
              />{' '}
              {t.name}
            </label>
          ))}
        </fieldset>
      ) : null}
      <Field label="Valid for (hours)">
        {(id) => <input id={id} inputMode="decimal" value={ttlHours} onInput={(e) => setTtlHours(e.currentTarget.value)} />}
      </Field>
      <ErrorNotice problem={create.problem} title="Could not create the join token" />
      <button type="submit" disabled={create.busy || (kind === 'targets' && chosen.length === 0)}>
        Create join token
      </button>
      {made && commands ? (
        <div class="admin-result" role="status">
          <p>
            Join token <code>{made.id}</code>: works once, until <time dateTime={made.expiresAt}>{made.expiresAt}</time>. It is shown only now.
          </p>
          <CopyBox label="Join token" value={made.token} />
          <CopyBox label="Start the agent on its host" value={commands.start} multiline />
          <CopyBox label="Or install it as a systemd service" value={commands.service} multiline />
        </div>
      ) : null}
    </form>
  );
}
