import type { ApiClient } from '@ferry/agent';
import { connect } from './settings.js';

/** Runs a command body with a connected client and always closes it. */
export async function withClient<T>(body: (client: ApiClient) => Promise<T>): Promise<T> {
  const client = await connect();
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}
