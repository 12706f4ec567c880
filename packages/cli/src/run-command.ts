import type { FerryClient } from '@ferry/client';
import { Routes } from '@ferry/protocol';
import { connect } from './settings.js';

export type ApiRoutes = typeof Routes;

/** Runs a command body with a connected client (and the route table) and always closes it. */
export async function withClient<T>(body: (client: FerryClient, routes: ApiRoutes) => Promise<T>): Promise<T> {
  const client = await connect();
  try {
    return await body(client, Routes);
  } finally {
    await client.close();
  }
}
