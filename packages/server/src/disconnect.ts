import type { ServerResponse } from 'node:http';

/**
 * An AbortSignal that fires when the client goes away before we answered. (The request's own
 * 'close' event fires once its body is read, so it cannot tell us that; the response's can.)
 */
export function abortOnDisconnect(res: ServerResponse): AbortController {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller;
}
