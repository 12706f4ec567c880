/**
 * A real HTTPS webhook receiver on loopback, with its own self-signed certificate (made with
 * the system's openssl), that records every request and answers as the test says.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { tempDir } from './ferry.js';

export interface ReceivedRequest {
  headers: Record<string, string | string[] | undefined>;
  body: string;
  at: number;
}

/** How the receiver answers a request: an HTTP status, or `hang` (never answers). */
type Answer = number | 'hang';

export interface WebhookReceiver {
  url: string;
  /** The receiver's certificate, to trust as the server's `webhookCa`. */
  caFile: string;
  requests: ReceivedRequest[];
  answer: (req: ReceivedRequest) => Answer;
  close(): Promise<void>;
}

export async function startWebhookReceiver(port = 0): Promise<WebhookReceiver> {
  const dir = tempDir('receiver');
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=webhook-receiver',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  const receiver: WebhookReceiver = { url: '', caFile: cert, requests: [], answer: () => 200, close: () => Promise.resolve() };
  const server: Server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const got: ReceivedRequest = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      receiver.requests.push(got);
      const answer = receiver.answer(got);
      if (answer === 'hang') return; // holds the connection open until the server gives up
      res.writeHead(answer).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  receiver.url = `https://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}
