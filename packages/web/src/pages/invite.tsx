/**
 * Accept an invitation: the URL `ferry user invite` prints opens this page with the invitation's
 * secret in the fragment (`/ui/invite#ferry_i_…`; browsers never send a fragment, so no log or
 * Referer holds it). The person sets a password, is signed in, and lands on the tasks page.
 */
import { MIN_PASSWORD_LENGTH, type RouteResult } from '@ferry/protocol';
import { useEffect, useState } from 'preact/hooks';
import { Field, Notice } from '../components/form';
import { api, errorText, Routes } from '../lib/api';
import { navigate } from '../lib/router';
import { setSession } from '../lib/session';

export default function InvitePage() {
  const secret = decodeURIComponent(location.hash.slice(1));
  const [invitation, setInvitation] = useState<RouteResult<typeof Routes.getInvitation>>();
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!secret) {
      setError('This address has no invitation in it: open the whole URL you were sent (it ends in #ferry_i_…).');
      return;
    }
    api
      .call(Routes.getInvitation, { body: { invitation: secret } })
      .then(setInvitation)
      .catch((err: unknown) => setError(errorText(err)));
  }, [secret]);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    if (!invitation) return;
    if (password !== again) {
      setError('The two passwords differ.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      await api.call(Routes.acceptInvitation, { body: { invitation: secret, password } });
      setSession(await api.call(Routes.webSignIn, { body: { email: invitation.email, password, org: invitation.org } }));
      // The secret is used up; take it out of the address bar and the history.
      history.replaceState(null, '', '/ui/invite');
      navigate('/ui/tasks', { replace: true });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="narrow">
      <h1>Join Ferry</h1>
      {error && <Notice kind="error">{error}</Notice>}
      {invitation ? (
        <form onSubmit={(e) => void submit(e)} aria-label="Set your password">
          <p>
            Set a password for <strong>{invitation.email}</strong> ({invitation.role} of {invitation.org}).
          </p>
          <Field
            label={`Password (at least ${MIN_PASSWORD_LENGTH} characters)`}
            id="password"
            type="password"
            autoComplete="new-password"
            minLength={MIN_PASSWORD_LENGTH}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
          <Field
            label="Password again"
            id="again"
            type="password"
            autoComplete="new-password"
            required
            value={again}
            onInput={(e) => setAgain(e.currentTarget.value)}
          />
          <button type="submit" disabled={busy}>
            Set password and join
          </button>
        </form>
      ) : (
        !error && <p aria-live="polite">Checking the invitation…</p>
      )}
    </section>
  );
}
