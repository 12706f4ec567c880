/**
 * Sign in: e-mail and password (a browser session in an HttpOnly cookie), or through the
 * organization's identity provider (single sign-on), after which the server's callback sets the
 * cookie and opens the tasks page. `?next=` says where to go afterwards; `?error=&message=` is
 * how a refused single sign-on comes back here. `#link=SECRET` is the one-time link
 * `ferry server` prints for the first admin: it signs in at once.
 */
import { useEffect, useState } from 'preact/hooks';
import { Field, Notice } from '../components/form';
import { api, errorText, Routes } from '../lib/api';
import { navigate } from '../lib/router';
import { setSession } from '../lib/session';
import type { PageProps } from '../routes';

/** Only a path of this app: never send a person elsewhere after sign-in. */
function safeNext(next: string | null): string {
  return next && next.startsWith('/ui/') && !next.startsWith('//') ? next : '/ui/tasks';
}

export default function SignInPage({ query }: PageProps) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [org, setOrg] = useState(query.get('org') ?? '');
  const [error, setError] = useState(query.get('message') ?? '');
  const [busy, setBusy] = useState(false);
  const link = location.hash.startsWith('#link=') ? decodeURIComponent(location.hash.slice('#link='.length)) : '';

  useEffect(() => {
    if (!link) return;
    // The secret works once: out of the address bar and the history whatever happens.
    history.replaceState(null, '', location.pathname + location.search);
    setBusy(true);
    api
      .call(Routes.webLinkSignIn, { body: { link } })
      .then((session) => {
        setSession(session);
        navigate(safeNext(query.get('next')), { replace: true });
      })
      .catch((err: unknown) => {
        setError(errorText(err));
        setBusy(false);
      });
  }, []);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const session = await api.call(Routes.webSignIn, { body: { email, password, ...(org ? { org } : {}) } });
      setSession(session);
      navigate(safeNext(query.get('next')), { replace: true });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const sso = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const { authorizationUrl } = await api.call(Routes.webSsoStart, { body: { org: org || 'default' } });
      location.assign(authorizationUrl);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <section class="narrow">
      <h1>Sign in to Ferry</h1>
      {error && <Notice kind="error">{error}</Notice>}
      <form onSubmit={(e) => void submit(e)} aria-label="Sign in with a password">
        <Field label="E-mail" id="email" type="email" autoComplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        <Field
          label="Password"
          id="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
        <Field
          label="Organization"
          id="org"
          autoComplete="organization"
          hint="Needed only if your e-mail has accounts in several organizations, and for single sign-on."
          value={org}
          onInput={(e) => setOrg(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      <form class="sso" onSubmit={(e) => void sso(e)} aria-label="Single sign-on">
        <p>Or through your organization's identity provider (the organization above, or “default”):</p>
        <button type="submit" class="secondary" disabled={busy}>
          Sign in with SSO
        </button>
      </form>
    </section>
  );
}
