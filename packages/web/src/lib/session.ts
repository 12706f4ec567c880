/**
 * Who is signed in, for every component: `useSession()`. Loaded once at start from
 * `GET /v1/web/session` (the cookie is HttpOnly, so the page cannot read it; this answer also
 * carries the CSRF token), set by the sign-in pages, cleared at sign-out or on a 401.
 */
import { useEffect, useState } from 'preact/hooks';
import type { WebSession } from '@ferry/protocol';
import { api, isSignedOut, Routes, setCsrfToken } from './api';
import { navigate } from './router';

/** undefined: not known yet; null: signed out. */
let current: WebSession | null | undefined;
const listeners = new Set<() => void>();

export function setSession(session: WebSession | null): void {
  current = session;
  setCsrfToken(session?.csrfToken ?? '');
  for (const listener of listeners) listener();
}

export async function loadSession(): Promise<void> {
  try {
    setSession(await api.call(Routes.webSession));
  } catch (err) {
    if (!isSignedOut(err)) throw err;
    setSession(null);
  }
}

/** Revokes the session, then shows the sign-in page (first: so the page left does not ask to come back to it). */
export async function signOut(): Promise<void> {
  try {
    await api.call(Routes.webSignOut);
  } finally {
    navigate('/ui/sign-in');
    setSession(null);
  }
}

export function useSession(): WebSession | null | undefined {
  const [, setTick] = useState(0);
  useEffect(() => {
    const listener = (): void => setTick((n) => n + 1);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return current;
}
