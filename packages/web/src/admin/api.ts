/**
 * How the administration pages reach the server: the UI's one client (`api` of ../lib/api: the
 * session cookie and the CSRF header), through `call` of `@ferry/client`, so every answer is
 * checked against the route table's schema.
 */
import type { FerryClient } from '@ferry/client';
import { api } from '../lib/api';
import { useSession } from '../lib/session';

export type Call = FerryClient['call'];

const call: Call = api.call.bind(api);

/** The client's `call`, for a page and the forms it hands it to. */
export function useCall(): Call {
  return call;
}

/** Whether the person signed in is an admin of the organization: the pages offer admin-only forms to admins only. */
export function useIsAdmin(): boolean {
  return useSession()?.role === 'admin';
}
