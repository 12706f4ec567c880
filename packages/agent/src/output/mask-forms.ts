/**
 * The forms of a secret value: every string the masker (masker.ts) looks for on behalf of one
 * value, because a task may print the value encoded rather than as given.
 *
 * Forms masked for each value (`secretForms`; forms are deduplicated, and any form shorter
 * than minLength is dropped):
 * - the raw value, and the value trimmed;
 * - for multi-line values, each line (trimmed), and the whitespace-normalized value (runs of
 *   whitespace collapsed to one space, trimmed);
 * - base64, standard and URL-safe alphabets, at the three alignments: the value encoded as if
 *   it started at byte offset 0, 1 or 2 (mod 3) of a larger base64 stream, keeping only the
 *   stable inner characters (those made of the value's bits alone; the first one or two and
 *   the last one or two depend on neighbouring bytes and are dropped). Also for the trimmed
 *   value when it differs (values read from files often end with a newline);
 * - URL-encoded: encodeURIComponent, the same with `+` for space, and the
 *   application/x-www-form-urlencoded form of URLSearchParams;
 * - JSON-escaped (JSON.stringify without the quotes), plus the variants other encoders
 *   produce: non-ASCII as \uXXXX (Python's ensure_ascii), `/` as `\/` (PHP), `<>&` as \u003c
 *   etc. (Go);
 * - shell-quoted: the inside of a single-quoted word (`'` written as `'\''`), and bash
 *   `printf %q`: backslash escapes, or the inside of $'...' when the value has control
 *   characters.
 *
 * Values shorter than minLength (6) characters (UTF-16 units, `value.length`, the same rule
 * as secrets/prepare.ts) are not masked at all: too short to mask without destroying ordinary
 * output. SecretMasker's `skipped` lists their indices (it never sees names) so the caller can warn.
 *
 * Limits of the forms (known):
 * - Only the encodings above. Hex, base32, gzip, MIME-wrapped base64 (line breaks every 76
 *   characters), lowercase %-escapes, other encoders' escaping rules, encodings of single
 *   lines, any other transformation of the value, or a value printed piecewise with other
 *   bytes in between, are not caught.
 * - At the edges of a base64 match, the one or two characters that mix the value's bits with
 *   a neighbour's stay visible (at most 4 bits of the value each). A base64 form whose stable
 *   part is shorter than minLength is not masked (very short values: the raw form still is).
 * - `printf %q` is modelled on bash 5 in a UTF-8 locale (other locales quote non-ASCII
 *   differently).
 */

export const DEFAULT_MIN_SECRET_LENGTH = 6;

/** Every string the masker looks for on behalf of one value (deduplicated; empty if the value is too short). */
export function secretForms(value: string, minLength: number = DEFAULT_MIN_SECRET_LENGTH): string[] {
  if (value.length === 0 || value.length < minLength) return [];
  const forms = new Set<string>();
  const add = (f: string | undefined): void => {
    if (f !== undefined && f.length > 0 && f.length >= minLength) forms.add(f);
  };
  add(value);
  const trimmed = value.trim();
  add(trimmed);
  if (/[\r\n]/.test(value)) for (const line of value.split(/\r\n|\r|\n/)) add(line.trim());
  add(value.replace(/\s+/g, ' ').trim());
  for (const v of new Set([value, trimmed])) if (v.length > 0) for (const f of base64Forms(v)) add(f);
  const uri = uriComponent(value);
  add(uri);
  add(uri?.replace(/%20/g, '+'));
  add(new URLSearchParams([['', value]]).toString().slice(1));
  const json = JSON.stringify(value).slice(1, -1);
  add(json);
  add(json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  add(json.replace(/\//g, '\\/'));
  add(json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  add(value.replace(/'/g, `'\\''`));
  add(bashPrintfQ(value));
  return [...forms];
}

/** Stable inner parts of the value's base64 (standard and URL-safe) at byte offsets 0, 1 and 2 mod 3. */
function base64Forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const n = bytes.length;
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    const enc = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64');
    // Character j carries bits [6j, 6j + 6); the value holds bits [8k, 8(k + n)).
    const stable = enc.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + n)) / 6));
    out.push(stable, stable.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return out;
}

function uriComponent(value: string): string | undefined {
  try {
    return encodeURIComponent(value);
  } catch {
    return undefined; // lone surrogate: not representable
  }
}

/** Characters bash's `printf %q` escapes with a backslash anywhere in a word. */
const SHELL_SPECIAL = new Set(' !"$&\'()*,;<>?[\\]^`{|}');

/** What bash 5 `printf %q` prints for the value (UTF-8 locale); for the $'...' style, only the inside. */
export function bashPrintfQ(value: string): string {
  if (value === '') return "''";
  if ([...value].some(isControl)) {
    let out = '';
    for (const ch of value) {
      const named = ANSI_C_NAMES[ch];
      if (named !== undefined) out += named;
      else if (ch === '\\' || ch === "'") out += `\\${ch}`;
      else if (isControl(ch)) {
        for (const b of Buffer.from(ch, 'utf8')) out += `\\${b.toString(8).padStart(3, '0')}`;
      } else out += ch;
    }
    return out;
  }
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    const prev = i === 0 ? '' : value[i - 1]!;
    if (SHELL_SPECIAL.has(ch) || (ch === '#' && i === 0) || (ch === '~' && (i === 0 || prev === ':' || prev === '='))) out += '\\';
    out += ch;
  }
  return out;
}

/**
 * Characters glibc's iswprint rejects (controls, line/paragraph separators, unassigned code
 * points): bash's %q switches to $'...' for them and writes them as octal bytes.
 */
const NOT_PRINTABLE = /^[\p{Cc}\p{Zl}\p{Zp}\p{Cn}]$/u;
function isControl(ch: string): boolean {
  return NOT_PRINTABLE.test(ch);
}

const ANSI_C_NAMES: Record<string, string> = {
  '\u001b': '\\E',
  '\u0007': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
};
