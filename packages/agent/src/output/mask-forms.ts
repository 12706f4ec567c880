/**
 * The forms of a secret value: every string the masker (masker.ts) looks for on behalf of one
 * value, because a task may print the value encoded rather than as given. The encoders are in
 * form-encoders.ts.
 *
 * Exact forms (matched byte for byte), for the value and for the value trimmed:
 * - the raw value and the trimmed value; for multi-line values each line (trimmed) and the
 *   whitespace-normalized value (runs of whitespace collapsed to one space, trimmed);
 * - percent-encoded as each common encoder writes it: JavaScript encodeURIComponent, RFC 3986
 *   (Python quote / quote_plus, PHP rawurlencode, curl, jq), Python's default quote (keeps
 *   `/`), form encoding (URLSearchParams), PHP urlencode; each with %20 or `+` for a space,
 *   with upper- or lower-case hex digits;
 * - JSON-escaped: JSON.stringify without the quotes, non-ASCII as \uXXXX (Python), `/` as
 *   `\/` (PHP), `<>&` as \u003c etc. (Go);
 * - shell-quoted: the inside of a single-quoted word with `'` as `'\''` or as `'"'"'`
 *   (Python shlex.quote), and bash `printf %q` (backslashes, or the inside of $'...');
 * - HTML-escaped: `&amp; &lt; &gt;`, with `"` as `&quot;`/`&#34;` and `'` as `&#x27;`
 *   (Python html.escape), `&#39;` (Jinja2, Rails, Go), `&#039;` (PHP) or `&apos;`.
 *
 * Wrappable forms (matched also when broken by line breaks or spaces: wrap-rules.ts):
 * - base64, at the three alignments: the value encoded as if it started at byte offset 0, 1
 *   or 2 (mod 3) of a larger base64 stream, keeping only the stable inner characters. Also
 *   for the value without its first one or two bytes (`printf %s "${S:1}" | base64`), for the
 *   trimmed value, and for each line of a multi-line value. Standard alphabet only: the
 *   automaton matches `-` as `+` and `_` as `/`, so URL-safe base64 is covered, padded or not.
 *   Wrapped at any width (`base64`: 76, `openssl base64`: 64, MIME with `\r\n`).
 * - hex, lower and upper case, of the value, the trimmed value and each line: `xxd -p` (60
 *   digits a line), `od -An -tx1` and `hexdump -e '/1 "%02x "'` (a space between bytes).
 *
 * Values shorter than minLength (6) characters (UTF-16 units, `value.length`, the same rule as
 * secrets/prepare.ts) are not masked at all: too short to mask without destroying ordinary
 * output. A form shorter than minLength is dropped, and so is a line or shifted value that is
 * itself shorter. SecretMasker's `skipped` lists such values' indices so the caller can warn.
 *
 * Limits of the forms (known; the README's Secrets section has the user-facing list):
 * - Only the encodings above. Base32, gzip, hex dumps with an offset column (`xxd`, `od`
 *   without -An, `hexdump -C`, whose text column also shows the value 16 characters a line),
 *   other encoders' escaping rules, any other transformation of the value, or a value printed
 *   piecewise with other bytes in between, are not caught.
 * - At the edges of a base64 match, the one or two characters that mix the value's bits with
 *   a neighbour's stay visible (at most 4 bits of the value each); a value encoded without its
 *   first byte or two is covered, a value cut elsewhere is not. A wrapped form whose first
 *   line holds fewer than 8 of its characters shows those (wrap-rules.ts, the release rule).
 * - `printf %q` is modelled on bash 5 in a UTF-8 locale (other locales quote non-ASCII
 *   differently).
 */
import { base64Stable, htmlForms, jsonForms, percentForms, shellForms } from './form-encoders.js';

export const DEFAULT_MIN_SECRET_LENGTH = 6;

export interface SecretForms {
  /** Matched byte for byte. */
  exact: string[];
  /** Base64 (standard alphabet) and hex: matched also with short runs of spaces or line breaks inside. */
  wrappable: string[];
}

/** Every string the masker looks for on behalf of one value (deduplicated; empty if the value is too short). */
export function secretForms(value: string, minLength: number = DEFAULT_MIN_SECRET_LENGTH): SecretForms {
  if (value.length === 0 || value.length < minLength) return { exact: [], wrappable: [] };
  const exact = new Set<string>();
  const wrappable = new Set<string>();
  const long = (f: string | undefined): f is string => f !== undefined && f.length > 0 && f.length >= minLength;
  const addExact = (f: string | undefined): void => void (long(f) && exact.add(f));
  const addWrappable = (f: string): void => void (long(f) && wrappable.add(f));

  const trimmed = value.trim();
  const whole = [...new Set([value, trimmed])].filter((v) => v.length >= minLength);
  const lines = /[\r\n]/.test(value) ? value.split(/\r\n|\r|\n/).map((l) => l.trim()) : [];
  for (const v of [...whole, ...lines]) addExact(v);
  addExact(value.replace(/\s+/g, ' ').trim());
  for (const v of whole) {
    for (const f of [...percentForms(v), ...jsonForms(v), ...shellForms(v), ...htmlForms(v)]) addExact(f);
  }

  for (const v of whole) {
    const bytes = Buffer.from(v, 'utf8');
    for (const shift of [0, 1, 2]) {
      const shifted = bytes.subarray(shift);
      if (shifted.length >= minLength) for (const f of base64Forms(shifted)) addWrappable(f);
    }
  }
  for (const v of [...whole, ...lines.filter((l) => l.length >= minLength)]) {
    const bytes = Buffer.from(v, 'utf8');
    if (!whole.includes(v)) for (const f of base64Forms(bytes)) addWrappable(f);
    const hex = bytes.toString('hex');
    addWrappable(hex);
    addWrappable(hex.toUpperCase());
  }
  return { exact: [...exact], wrappable: [...wrappable] };
}

/** Stable inner parts of the value's base64 at byte offsets 0, 1 and 2 mod 3. */
function base64Forms(bytes: Buffer): string[] {
  return [0, 1, 2].map((k) => base64Stable(bytes, k));
}
