/**
 * The encoders behind mask-forms.ts: each writes a value the way a common tool or library
 * does, so the masker can look for that text. Each is checked against the real tool in
 * packages/agent/test/masker.encodings.test.ts.
 */

/**
 * The stable inner part of the base64 (standard alphabet) of `bytes` placed at byte offset k
 * (mod 3) of a larger base64 stream: only the characters made of the value's bits alone (the
 * first one or two and the last one or two mix in neighbouring bytes and are dropped).
 */
export function base64Stable(bytes: Buffer, k: number): string {
  const enc = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64');
  // Character j carries bits [6j, 6j + 6); the value holds bits [8k, 8(k + n)).
  return enc.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + bytes.length)) / 6));
}

/** Characters left as they are by each common percent-encoder (everything else is %XX of its UTF-8 bytes). */
const PERCENT_KEEP: readonly string[] = [
  "-_.!~*'()", // JavaScript encodeURIComponent
  '-_.~', // RFC 3986 unreserved: Python quote(safe=''), quote_plus, PHP rawurlencode, jq @uri, curl
  '-_.~/', // Python urllib.parse.quote (safe='/' by default)
  '*-._', // application/x-www-form-urlencoded: URLSearchParams, Java URLEncoder
  '-_.', // PHP urlencode
];

/** Lone UTF-16 surrogates: not representable in UTF-8, so no encoder writes them. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The value percent-encoded by each common encoder, with %20 or + for a space, upper- and lower-case hex. */
export function percentForms(value: string): string[] {
  if (LONE_SURROGATE.test(value)) return [];
  const out: string[] = [];
  for (const keep of PERCENT_KEEP) {
    for (const spacePlus of [false, true]) {
      for (const lower of [false, true]) out.push(percentEncode(value, keep, spacePlus, lower));
    }
  }
  return out;
}

function percentEncode(value: string, keep: string, spacePlus: boolean, lower: boolean): string {
  let out = '';
  for (const ch of value) {
    if (/^[A-Za-z0-9]$/.test(ch) || keep.includes(ch)) out += ch;
    else if (ch === ' ' && spacePlus) out += '+';
    else {
      for (const b of Buffer.from(ch, 'utf8')) {
        const hex = b.toString(16).padStart(2, '0');
        out += `%${lower ? hex : hex.toUpperCase()}`;
      }
    }
  }
  return out;
}

const hex4 = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** JSON-escaped (without the quotes): JSON.stringify, and the ASCII-only (Python), `\/` (PHP) and `\u003c` (Go) variants. */
export function jsonForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  return [json, json.replace(/[\u007f-\uffff]/g, hex4), json.replace(/\//g, '\\/'), json.replace(/[<>&\u2028\u2029]/g, hex4)];
}

/**
 * Shell-quoted: the inside of a single-quoted word with `'` as `'\''` (the common idiom) or
 * as `'"'"'` (Python's shlex.quote), and bash `printf %q`.
 */
export function shellForms(value: string): string[] {
  return [value.replace(/'/g, `'\\''`), value.replace(/'/g, `'"'"'`), bashPrintfQ(value)];
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

/** How `"` and `'` come out of each common HTML escaper (`&`, `<`, `>` always as &amp; &lt; &gt;). */
const HTML_QUOTES: readonly (readonly [string | undefined, string | undefined])[] = [
  [undefined, undefined], // Python html.escape(quote=False), XML text
  ['&quot;', undefined], // PHP htmlspecialchars (ENT_COMPAT)
  ['&quot;', '&#x27;'], // Python html.escape
  ['&quot;', '&#39;'], // Jinja2/MarkupSafe, Rails ERB, lodash _.escape
  ['&#34;', '&#39;'], // Go html/template and text/template
  ['&quot;', '&#039;'], // PHP htmlspecialchars (ENT_QUOTES)
  ['&quot;', '&apos;'], // XML, PHP ENT_HTML5
];

/** HTML/XML-escaped, as common escapers write it. */
export function htmlForms(value: string): string[] {
  const base = value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return HTML_QUOTES.map(([dq, sq]) => {
    let out = base;
    if (dq !== undefined) out = out.replace(/"/g, dq);
    if (sq !== undefined) out = out.replace(/'/g, sq);
    return out;
  });
}
