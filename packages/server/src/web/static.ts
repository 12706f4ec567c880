/**
 * Serves the web UI (packages/web, built by `npm run build` into packages/web/dist) on the API's
 * own origin: `/` and every `/ui/…` path answer the app's index.html (the app routes in the
 * browser, so a link such as the Slack webhook's `/ui/tasks/ID` opens its page), and
 * `/assets/…` the hashed files the build made.
 *
 * - Content-Security-Policy on the HTML: scripts, styles and connections from this origin only;
 *   no inline script, no `eval`, no plugins, no <base>, no framing.
 * - Assets are precompressed by the build (x.br, x.gz beside x): the copy the browser accepts is
 *   sent as it is, with `Vary: Accept-Encoding`.
 * - Cache: hashed assets for a year, immutable; index.html is never stored (each answer has its
 *   own CSP nonce, below), so a new build is picked up at the next load.
 * - The one exception to "styles from files only": the code editor (CodeMirror) writes its
 *   styles into a <style> element, allowed by a nonce that is new for every answer, in the CSP
 *   and in the page's `<meta name="csp-nonce">` (where the placeholder FERRY_CSP_NONCE was).
 *   Scripts get no nonce: `script-src 'self'` only.
 *
 * The folder is read once, when the server starts. Without a build, these paths answer a page
 * that says how to build it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FerryApp } from '../app.js';

/** packages/web/dist, seen from packages/server/dist/web/static.js (and from src/ under tsx). */
const DEFAULT_ROOT = fileURLToPath(new URL('../../../web/dist/', import.meta.url));

const NONCE_PLACEHOLDER = 'FERRY_CSP_NONCE';

const contentSecurityPolicy = (styleNonce?: string): string =>
  [
    "default-src 'none'",
    "script-src 'self'",
    styleNonce ? `style-src 'self' 'nonce-${styleNonce}'` : "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'none'",
  ].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

interface Asset {
  type: string;
  etag: string;
  /** By content coding: identity, br, gzip (those the build made). */
  bodies: Map<'identity' | 'br' | 'gzip', Buffer>;
}

function* walk(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}

/** Every file of the build by its URL path (`/index.html`, `/assets/x-abc123.js`), with its compressed copies. */
function loadAssets(root: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(join(root, 'index.html'))) return assets;
  for (const path of walk(root)) {
    if (path.endsWith('.gz') || path.endsWith('.br')) continue;
    const body = readFileSync(path);
    const bodies = new Map<'identity' | 'br' | 'gzip', Buffer>([['identity', body]]);
    if (existsSync(`${path}.br`)) bodies.set('br', readFileSync(`${path}.br`));
    if (existsSync(`${path}.gz`)) bodies.set('gzip', readFileSync(`${path}.gz`));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(`/${relative(root, path).split(sep).join('/')}`, { type: TYPES[extname(path)] ?? 'application/octet-stream', etag, bodies });
  }
  return assets;
}

/** The best coding the browser accepts among those there are (q=0 refuses one). */
function pickCoding(req: FastifyRequest, asset: Asset): 'identity' | 'br' | 'gzip' {
  const accept = String(req.headers['accept-encoding'] ?? '');
  const accepts = (coding: string): boolean => new RegExp(`(^|,)\\s*${coding}\\s*(;\\s*q=(?!0(\\.0*)?\\s*(,|$))[0-9.]+)?\\s*(,|$)`, 'i').test(accept);
  if (asset.bodies.has('br') && accepts('br')) return 'br';
  if (asset.bodies.has('gzip') && accepts('gzip')) return 'gzip';
  return 'identity';
}

function send(req: FastifyRequest, reply: FastifyReply, asset: Asset, cacheControl: string): FastifyReply {
  void reply.header('cache-control', cacheControl).header('etag', asset.etag).header('vary', 'accept-encoding');
  if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  const coding = pickCoding(req, asset);
  if (coding !== 'identity') void reply.header('content-encoding', coding);
  return reply.code(200).type(asset.type).send(asset.bodies.get(coding));
}

/** The app's page, with a fresh nonce in its CSP and its <meta name="csp-nonce">. */
function sendPage(reply: FastifyReply, index: Asset): FastifyReply {
  const nonce = randomBytes(16).toString('base64');
  const html = (index.bodies.get('identity') ?? Buffer.alloc(0)).toString('utf8').replace(NONCE_PLACEHOLDER, nonce);
  return reply
    .code(200)
    .header('cache-control', 'no-store')
    .header('content-security-policy', contentSecurityPolicy(nonce))
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .type('text/html; charset=utf-8')
    .send(html);
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ferry</title></head>
<body><h1>The web UI is not built</h1><p>Build it with <code>npm run build</code> (the start command <code>bash scripts/start.sh</code> does), then restart <code>ferry server</code>. The API and the CLI work without it.</p></body></html>
`;

export function registerWebUi(app: FerryApp, root: string = DEFAULT_ROOT): void {
  const assets = loadAssets(root);
  const index = assets.get('/index.html');
  const page = (_req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (index) return sendPage(reply, index);
    return reply
      .code(503)
      .header('content-security-policy', contentSecurityPolicy())
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(NOT_BUILT);
  };
  app.get('/', async (req, reply) => page(req, reply));
  app.get('/ui', async (req, reply) => page(req, reply));
  app.get('/ui/*', async (req, reply) => page(req, reply));
  app.get('/assets/*', async (req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    const asset = path.startsWith('/assets/') ? assets.get(path) : undefined;
    if (!asset) return reply.code(404).type('text/plain; charset=utf-8').header('cache-control', 'no-store').send('No such file.\n');
    return send(req, reply, asset, 'public, max-age=31536000, immutable');
  });
}
