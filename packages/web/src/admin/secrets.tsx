/**
 * A target's secrets: names, who set them and when, never a value (nor its length). A value is
 * sealed here, in the browser, with the target's public key (`sealSecret` of `@ferry/client`,
 * WebCrypto, the CLI's envelope), so only the sealed envelope leaves the page; the field is
 * cleared as soon as it is sealed.
 */
import { ApiError, sealSecret, sleep } from '@ferry/client';
import { MIN_MASKED_SECRET_LENGTH, Routes, SECRET_NAME_PATTERN, TARGET_TYPE_INFO, type TargetKey } from '@ferry/protocol';
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { useCall, useIsAdmin, type Call } from './api';
import { AdminOnly, Ago, ConfirmButton, Empty, ErrorNotice, Field, Link, Loading, TableWrap, useAction, useLoad } from './ui';
import { targetHref } from './paths';

/** A new hosted target gets its key from its first agent within moments: wait a little, as the CLI does. */
async function targetKey(call: Call, target: string, onWaiting: () => void): Promise<TargetKey> {
  const deadline = Date.now() + 20_000;
  for (let announced = false; ; announced = true) {
    try {
      return await call(Routes.getTargetKey, { params: { name: target } });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'FERRY_E_TARGET_NO_KEY') || Date.now() > deadline) throw err;
      if (!announced) onWaiting();
      await sleep(500);
    }
  }
}

export function SecretsPage({ name }: { name: string }): JSX.Element {
  const call = useCall();
  const admin = useIsAdmin();
  const secrets = useLoad(() => call(Routes.listSecrets, { params: { name } }), [name]);
  const target = useLoad(() => call(Routes.getTarget, { params: { name } }), [name]);
  const list = secrets.data?.secrets ?? [];
  const del = useAction(async (secret: string) => {
    await call(Routes.deleteSecret, { params: { name, secret } });
    secrets.reload();
  });
  const required = target.data ? TARGET_TYPE_INFO[target.data.type].required.filter((r) => !list.some((s) => s.name === r)) : [];
  return (
    <section class="admin-page" aria-labelledby="secrets-title">
      <p>
        <Link href={targetHref(name)}>← Target {name}</Link>
      </p>
      <h1 id="secrets-title">Secrets of {name}</h1>
      <p>
        Values are sealed in this browser with the target's key before they are sent: the server never sees them, and nobody can read them back. Tasks get them
        as environment variables, masked in their output.
      </p>
      <ErrorNotice problem={secrets.problem} title="Could not list the secrets" />
      {secrets.loading && !secrets.data ? <Loading what="secrets" /> : null}
      {secrets.data && list.length === 0 ? <Empty>No secrets on {name} yet.</Empty> : null}
      {list.length > 0 ? (
        <TableWrap label={`Secrets of ${name}`}>
          <table class="admin-table">
            <caption class="visually-hidden">Secrets of {name}</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Set by</th>
                <th scope="col">Set</th>
                <th scope="col">Key</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((s) => (
                <tr key={s.name}>
                  <th scope="row">
                    <code>{s.name}</code>
                  </th>
                  <td>{s.setBy}</td>
                  <td>
                    <Ago at={s.setAt} />
                  </td>
                  <td>
                    <code>{s.kid.slice(0, 8)}</code>
                  </td>
                  <td>
                    {admin ? (
                      <ConfirmButton
                        label={`Delete ${s.name}`}
                        confirmLabel="Delete secret"
                        question={`Delete ${s.name}? Tasks that need it will fail.`}
                        onConfirm={() => del.act(s.name)}
                      />
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
      <ErrorNotice problem={del.problem} title="Could not delete the secret" />
      {required.length > 0 ? <p class="admin-hint">Tasks of this target need {required.join(', ')}, not set yet.</p> : null}
      {admin ? <SetSecretForm call={call} target={name} onSet={secrets.reload} /> : <AdminOnly what="Setting secrets" />}
    </section>
  );
}

function SetSecretForm({ call, target, onSet }: { call: Call; target: string; onSet: () => void }): JSX.Element {
  const [secret, setSecretName] = useState('');
  const [value, setValue] = useState('');
  const [status, setStatus] = useState<string | null>(null);
  const nameProblem = secret !== '' && !SECRET_NAME_PATTERN.test(secret) ? 'Use upper-case letters, digits and _ (e.g. DB_PASSWORD).' : null;
  const set = useAction(async () => {
    setStatus('Sealing…');
    const key = await targetKey(call, target, () => setStatus(`Waiting for ${target}'s agent to publish its sealing key…`));
    const sealed = await sealSecret(key.publicKeyPem, { orgId: key.orgId, targetId: key.targetId, name: secret }, value);
    // The clear value is not kept past this point: only the envelope is sent.
    setValue('');
    const info = await call(Routes.setSecret, { params: { name: target, secret }, body: { sealed } });
    setStatus(`Set ${info.name} (sealed with key ${info.kid.slice(0, 8)}).`);
    setSecretName('');
    onSet();
    return true;
  });
  return (
    <form
      class="admin-form"
      aria-labelledby="set-secret-title"
      autoComplete="off"
      onSubmit={(e) => {
        e.preventDefault();
        if (nameProblem) return;
        void set.act().then((done) => {
          // A failure is shown by the error notice; the progress line goes.
          if (done !== true) setStatus(null);
        });
      }}
    >
      <h2 id="set-secret-title">Set a secret</h2>
      <Field label="Name" hint="Upper-case letters, digits and _; setting an existing name replaces its value.">
        {(id, hint) => (
          <input
            id={id}
            aria-describedby={hint}
            aria-invalid={nameProblem ? 'true' : undefined}
            required
            value={secret}
            autoComplete="off"
            spellcheck={false}
            onInput={(e) => setSecretName(e.currentTarget.value)}
          />
        )}
      </Field>
      {nameProblem ? <p class="admin-field-problem">{nameProblem}</p> : null}
      <Field label="Value" hint={`Sealed in this browser. Values shorter than ${MIN_MASKED_SECRET_LENGTH} characters are not masked in output.`}>
        {(id, hint) => (
          <input
            id={id}
            type="password"
            aria-describedby={hint}
            required
            value={value}
            autoComplete="new-password"
            spellcheck={false}
            onInput={(e) => setValue(e.currentTarget.value)}
          />
        )}
      </Field>
      {value !== '' && value.length < MIN_MASKED_SECRET_LENGTH ? (
        <p class="admin-field-problem" role="status">
          Shorter than {MIN_MASKED_SECRET_LENGTH} characters: it will not be masked in task output.
        </p>
      ) : null}
      <ErrorNotice problem={set.problem} title="Could not set the secret" />
      <button type="submit" disabled={set.busy}>
        Seal and save
      </button>
      {status ? <p role="status">{status}</p> : null}
    </form>
  );
}
