/**
 * A join token carries everything an agent needs to register: the server URL, the SHA-256
 * fingerprint of the server's CA (so the agent pins it instead of trusting blindly) and a
 * one-time secret. Format: `ferryjoin1.` + base64url(JSON). An installation with several
 * servers (replicas) also lists all their URLs in `urls` (the first is `url`), which the agent
 * fails over between; tokens without it stay valid.
 */
import { z } from 'zod';
import { base64Decode, base64UrlEncode, utf8Decode, utf8Encode } from './bytes.js';

const PREFIX = 'ferryjoin1.';

export const JoinTokenPayload = z
  .object({
    url: z.string().url(),
    fp: z.string().regex(/^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/),
    secret: z.string().min(20),
    urls: z.array(z.string().url()).min(1).max(16).optional(),
  })
  .strict();
export type JoinTokenPayload = z.infer<typeof JoinTokenPayload>;

/** Every server URL a join token names, `url` first. */
export function joinTokenUrls(payload: JoinTokenPayload): string[] {
  return [...new Set([payload.url, ...(payload.urls ?? [])])];
}

export function encodeJoinToken(payload: JoinTokenPayload): string {
  return PREFIX + base64UrlEncode(utf8Encode(JSON.stringify(payload)));
}

/** Returns undefined when the text is not a well-formed join token. */
export function decodeJoinToken(text: string): JoinTokenPayload | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith(PREFIX)) return undefined;
  try {
    const json: unknown = JSON.parse(utf8Decode(base64Decode(trimmed.slice(PREFIX.length))));
    const parsed = JoinTokenPayload.safeParse(json);
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Normalizes a CA fingerprint to upper-case colon-separated hex, or undefined if malformed. */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text
    .replace(/^sha256:/i, '')
    .replace(/[:\s]/g, '')
    .toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined;
  return hex.match(/../g)!.join(':');
}

/** Where the install commands keep a self-hosted agent's data (its credential and target keys). */
export const DEFAULT_AGENT_DATA_DIR = '/var/lib/ferry-agent';

/** Quotes a word for a POSIX shell unless it is made only of characters no shell treats specially. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9._:/=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The commands that start an agent with a join token, ready to paste on the agent's host: the
 * CLI prints them after `ferry agent token create` and the web UI shows them beside a new token,
 * so both say the same thing. `start` runs it in the foreground; `service` installs it as a
 * systemd service (README "Deploy").
 */
export function agentInstallCommands(token: string, dataDir = DEFAULT_AGENT_DATA_DIR): { start: string; service: string } {
  return {
    start: `ferry agent start --join-token ${shellWord(token)} --data-dir ${shellWord(dataDir)}`,
    service: `sudo ferry agent install --join-token ${shellWord(token)}`,
  };
}
