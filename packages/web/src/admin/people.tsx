/** People and groups: invitations (with the URL to pass on), roles, removal; groups and their members. */
import { ROLES, Routes, type Role } from '@ferry/protocol';
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { useCall, type Call } from './api';
import { Ago, ConfirmButton, CopyBox, Empty, ErrorNotice, Field, Loading, TableWrap, useAction, useLoad } from './ui';

function RoleSelect({ id, value, onChange, describedBy }: { id: string; value: Role; onChange: (r: Role) => void; describedBy?: string }): JSX.Element {
  return (
    <select id={id} aria-describedby={describedBy} value={value} onChange={(e) => onChange(e.currentTarget.value as Role)}>
      {ROLES.map((r) => (
        <option key={r} value={r}>
          {r}
        </option>
      ))}
    </select>
  );
}

export function PeopleSection(): JSX.Element {
  const call = useCall();
  const people = useLoad(() => call(Routes.listUsers), []);
  const users = people.data?.users ?? [];
  const invitations = people.data?.invitations ?? [];
  return (
    <section aria-labelledby="people-title" class="admin-subsection">
      <h2 id="people-title">People</h2>
      <ErrorNotice problem={people.problem} title="Could not list the people" />
      {people.loading && !people.data ? <Loading what="people" /> : null}
      {people.data && users.length === 0 ? <Empty>Nobody has joined yet. Invite someone below.</Empty> : null}
      {users.length > 0 ? (
        <TableWrap label="People">
          <table class="admin-table">
            <caption class="visually-hidden">People</caption>
            <thead>
              <tr>
                <th scope="col">E-mail</th>
                <th scope="col">Role</th>
                <th scope="col">Groups</th>
                <th scope="col">Joined</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.map((u) => (
                <PersonRow key={u.email} call={call} email={u.email} role={u.role} groups={u.groups} joined={u.createdAt} onChange={people.reload} />
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
      {invitations.length > 0 ? (
        <>
          <h3>Invitations not yet accepted</h3>
          <ul class="admin-list">
            {invitations.map((i) => (
              <li key={i.email}>
                {i.email} as {i.role}, until <time dateTime={i.expiresAt}>{i.expiresAt}</time>
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <InviteForm call={call} onInvited={people.reload} />
    </section>
  );
}

function PersonRow(props: { call: Call; email: string; role: Role; groups: string[]; joined: string; onChange: () => void }): JSX.Element {
  const { call, email, onChange } = props;
  const [role, setRole] = useState<Role>(props.role);
  const change = useAction(async (r: Role) => {
    setRole(r);
    try {
      await call(Routes.setUserRole, { params: { email }, body: { role: r } });
    } catch (err) {
      setRole(props.role); // the select shows the role in force
      throw err;
    }
    onChange();
  });
  const remove = useAction(async () => {
    await call(Routes.removeUser, { params: { email } });
    onChange();
  });
  const selectId = `role-${email}`;
  return (
    <tr>
      <th scope="row">{email}</th>
      <td>
        <label for={selectId} class="visually-hidden">
          Role of {email}
        </label>
        <RoleSelect id={selectId} value={role} onChange={(r) => void change.act(r)} />
        <ErrorNotice problem={change.problem} title="Role not changed" />
      </td>
      <td>{props.groups.join(', ') || '-'}</td>
      <td>
        <Ago at={props.joined} />
      </td>
      <td>
        <ConfirmButton
          label={`Remove ${email}`}
          confirmLabel="Remove"
          question={`Remove ${email}? Their sessions and tokens stop working.`}
          onConfirm={() => remove.act()}
        />
        <ErrorNotice problem={remove.problem} title="Could not remove" />
      </td>
    </tr>
  );
}

function InviteForm({ call, onInvited }: { call: Call; onInvited: () => void }): JSX.Element {
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('operator');
  const [invited, setInvited] = useState<{ email: string; url: string; expiresAt: string } | null>(null);
  const invite = useAction(async () => {
    setInvited(null);
    const res = await call(Routes.inviteUser, { body: { email: email.trim(), role } });
    setInvited(res);
    setEmail('');
    onInvited();
  });
  return (
    <form
      class="admin-form"
      aria-labelledby="invite-title"
      onSubmit={(e) => {
        e.preventDefault();
        void invite.act();
      }}
    >
      <h3 id="invite-title">Invite someone</h3>
      <Field label="E-mail">
        {(id) => <input id={id} type="email" required autoComplete="off" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />}
      </Field>
      <Field label="Role" hint="admin: everything; operator: runs tasks on granted targets; viewer: reads them.">
        {(id, hint) => <RoleSelect id={id} describedBy={hint} value={role} onChange={setRole} />}
      </Field>
      <ErrorNotice problem={invite.problem} title="Could not invite" />
      <button type="submit" disabled={invite.busy}>
        Invite
      </button>
      {invited ? (
        <div class="admin-result" role="status">
          <p>
            Send this link to {invited.email}: it works once, until <time dateTime={invited.expiresAt}>{invited.expiresAt}</time>, and is shown only now.
          </p>
          <CopyBox label="Invitation URL" value={invited.url} />
        </div>
      ) : null}
    </form>
  );
}

export function GroupsSection(): JSX.Element {
  const call = useCall();
  const groups = useLoad(() => call(Routes.listGroups), []);
  const [name, setName] = useState('');
  const create = useAction(async () => {
    await call(Routes.createGroup, { body: { name: name.trim() } });
    setName('');
    groups.reload();
  });
  const list = groups.data?.groups ?? [];
  return (
    <section aria-labelledby="groups-title" class="admin-subsection">
      <h2 id="groups-title">Groups</h2>
      <p>A group is granted roles on targets (on each target's page); its members get them.</p>
      <ErrorNotice problem={groups.problem} title="Could not list the groups" />
      {groups.loading && !groups.data ? <Loading what="groups" /> : null}
      {groups.data && list.length === 0 ? <Empty>No groups yet.</Empty> : null}
      {list.map((g) => (
        <GroupCard key={g.name} call={call} name={g.name} members={g.members} grants={g.grants} onChange={groups.reload} />
      ))}
      <form
        class="admin-form admin-inline"
        aria-labelledby="new-group-title"
        onSubmit={(e) => {
          e.preventDefault();
          void create.act();
        }}
      >
        <h3 id="new-group-title">New group</h3>
        <Field label="Group name">{(id) => <input id={id} required value={name} autoComplete="off" onInput={(e) => setName(e.currentTarget.value)} />}</Field>
        <button type="submit" disabled={create.busy}>
          Create group
        </button>
      </form>
      <ErrorNotice problem={create.problem} title="Could not create the group" />
    </section>
  );
}

function GroupCard(props: { call: Call; name: string; members: string[]; grants: { target: string; role: string }[]; onChange: () => void }): JSX.Element {
  const { call, name, onChange } = props;
  const [member, setMember] = useState('');
  const add = useAction(async () => {
    await call(Routes.addGroupMember, { params: { group: name, member: member.trim() } });
    setMember('');
    onChange();
  });
  const remove = useAction(async (m: string) => {
    await call(Routes.removeGroupMember, { params: { group: name, member: m } });
    onChange();
  });
  const inputId = `member-${name}`;
  return (
    <article class="admin-card" aria-labelledby={`group-${name}`}>
      <h3 id={`group-${name}`}>{name}</h3>
      <p>Grants: {props.grants.map((g) => `${g.target} (${g.role})`).join(', ') || 'none'}</p>
      {props.members.length === 0 ? <Empty>No members.</Empty> : null}
      <ul class="admin-list">
        {props.members.map((m) => (
          <li key={m}>
            {m}{' '}
            <ConfirmButton
              label={`Remove ${m} from ${name}`}
              confirmLabel="Remove member"
              question={`Take ${m} out of ${name}?`}
              onConfirm={() => remove.act(m)}
            />
          </li>
        ))}
      </ul>
      <ErrorNotice problem={remove.problem} title="Could not remove the member" />
      <form
        class="admin-inline"
        onSubmit={(e) => {
          e.preventDefault();
          void add.act();
        }}
      >
        <label for={inputId}>Add a member to {name} (e-mail or service account)</label>
        <input id={inputId} required value={member} autoComplete="off" onInput={(e) => setMember(e.currentTarget.value)} />
        <button type="submit" disabled={add.busy}>
          Add member
        </button>
      </form>
      <ErrorNotice problem={add.problem} title="Could not add the member" />
    </article>
  );
}
