/**
 * The UI's only way to the server: the shared typed client (`@ferry/client`) over the browser's
 * `fetch`, on this page's origin. The session is the HttpOnly cookie the browser sends by
 * itself (same-origin credentials); every request also carries the session's CSRF token, which
 * the server wants on writes (it learns nothing from it on reads).
 *
 *   import { api, Routes } from '../lib/api';
 *   const { tasks } = await api.call(Routes.listTasks, { query: { limit: 50 } });
 *
 * Errors are `ApiError`s with the server's stable `code` and a message a person can act on:
 * show `errorText(err)`.
 */
import { ApiError, FerryClient, Routes, type FetchInit, type FetchResponseLike } from '@ferry/client';
import { CSRF_HEADER } from '@ferry/protocol';

let csrfToken = '';

/** Set after sign-in (and from `GET /v1/web/session` on load); cleared at sign-out. */
export function setCsrfToken(token: string): void {
  csrfToken = token;
}

function browserFetch(url: string, init: FetchInit): Promise<FetchResponseLike> {
  const headers = csrfToken ? { ...init.headers, [CSRF_HEADER]: csrfToken } : init.headers;
  return fetch(url, {
    method: init.method,
    headers,
    body: init.body as BodyInit | undefined,
    signal: init.signal ?? null,
    redirect: 'error',
    credentials: 'same-origin',
    cache: 'no-store',
  });
}

export const api = new FerryClient({ baseUrl: location.origin, fetch: browserFetch });

export { Routes };

/** What to show a person for a failed call. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Whether the error means "not signed in (any more)". */
export function isSignedOut(err: unknown): boolean {
  return err instanceof ApiError && err.status === 401;
}
