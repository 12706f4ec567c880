/**
 * How the administration pages reach the server: the web UI's one client (web-core's API module:
 * cookie session, CSRF header), through `call` of `@ferry/client`, so every answer is checked
 * against the route table's schema.
 */
import type { FerryClient } from '@ferry/client';

export type Call = FerryClient['call'];

// Placeholder until web-core's API module is merged: replaced by its client.
export function useCall(): Call {
  throw new Error('not wired yet');
}
