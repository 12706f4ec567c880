/**
 * Line-wrapped and spaced-out encodings: how the masker finds a value's base64 or hex broken
 * by line breaks or spaces, and why that never holds back an ordinary line.
 *
 * The problem. `base64` wraps at 76 columns, `openssl base64` at 64, Python's
 * `base64.encodebytes` at 76, MIME with `\r\n`; `xxd -p` at 60 hex digits; `od -An -tx1`
 * writes ` 68 65 6c` with a space before each byte and 16 bytes a line. Where the breaks fall
 * inside a value's encoding depends on where the value starts in the encoded data (its phase),
 * so the wrapped text is not one fixed string: matching every phase would take one pattern
 * per phase (width x length states per value), and a wrapped form might not be caught at all
 * if its width is not one we listed.
 *
 * The approach: normalize, inside a bounded window, in the automaton. The encoded forms
 * (mask-forms.ts `wrappable`: base64 and hex, alphabets without whitespace) go into their own
 * automaton whose separators are space, tab, CR and LF (SEPARATORS): a run of at most
 * MAX_SEPARATOR_RUN (2) of them between two characters of a form is skipped, a longer run is
 * a barrier (aho-corasick.ts, "Separators"). So the form is found at any width and phase, with
 * `\n`, `\r\n`, `\n ` (od) or single spaces (od, hexdump) inside it, and nothing else gets in:
 * matching is still exact on the form's characters. The masked region runs from the form's
 * first character to its last, separators inside included (one `***` for the whole wrapped
 * block, as for any multi-line match). A match's length counts form characters only, so its
 * start is found by walking back over that many non-separator bytes (`walkBack`); the caller
 * keeps those bytes (at most MAX_SEPARATOR_RUN + 1 bytes per character).
 *
 * Why an ordinary line is not held back: the release rule. A line that ends with a few
 * characters that happen to begin some form, then `\n`, could be the first line of a wrapped
 * form, so a matcher that skips line breaks would hold that line until the next one arrives.
 * With a hundred secrets nearly every character begins some form. So: a line break that comes
 * before the WRAP_MIN_CHARS-th (8th) character of an occurrence releases what precedes it.
 * The masked region of an occurrence starts after every such line break (`clipStart`), and the
 * stream's pending prefix is clipped the same way before deciding what to hold. An ordinary
 * line is then held only if its last 8 or more characters (single spaces aside) begin a
 * form: about one line in 2^48 for base64 forms, one in 2^32 for hex, per form. Both the
 * matches and the clipping depend only on the bytes, so chunking changes nothing.
 * The price: when a value's encoding starts fewer than 8 characters before a line break (it
 * was embedded at an unlucky offset of a larger encoded document), those first characters
 * (under 6 bytes of the value) stay visible; the rest is masked. A value encoded on its own
 * (`printf %s "$S" | base64`) starts a line, so it is masked whole.
 */

/** Bytes skipped inside a wrappable form: space, tab, CR, LF. */
export const SEPARATORS: readonly number[] = [0x20, 0x09, 0x0d, 0x0a];

/** Longest run of separators skipped between two characters of a form (`\r\n`, `\n `, `  `). */
export const MAX_SEPARATOR_RUN = 2;

/** A line break before this many characters of an occurrence releases what precedes it. */
const WRAP_MIN_CHARS = 8;

/** Reads the byte at an absolute position of the sequence being scanned; -1 if it is no longer kept. */
export type ByteAt = (pos: number) => number;

const CR = 0x0d;
const LF = 0x0a;

/**
 * Start of the occurrence that ends just before `end` and has `chars` form characters: the
 * position of the `chars`-th non-separator byte counting back from `end`.
 */
export function walkBack(byteAt: ByteAt, separator: Uint8Array, end: number, chars: number): number {
  let p = end;
  for (let left = chars; left > 0;) {
    const b = byteAt(--p);
    if (b < 0) return p + 1; // not kept: cannot happen (callers keep every pending string), but never loop
    if (separator[b] === 0) left--;
  }
  return p;
}

/**
 * Where the masked (or held) part of the occurrence [start, end) begins: after every separator
 * run containing a line break that comes before WRAP_MIN_CHARS characters counted from the
 * previous such point. `end` may be the end of the stream so far (a pending prefix); a trailing
 * line break then releases everything when fewer characters precede it.
 */
export function clipStart(byteAt: ByteAt, separator: Uint8Array, start: number, end: number, minChars: number = WRAP_MIN_CHARS): number {
  let from = start;
  let chars = 0;
  let p = start;
  while (p < end) {
    const b = byteAt(p);
    if (separator[b] === 0) {
      if (++chars >= minChars) return from;
      p++;
      continue;
    }
    let lineBreak = false;
    for (; p < end && separator[byteAt(p)] === 1; p++) {
      const c = byteAt(p);
      if (c === LF || c === CR) lineBreak = true;
    }
    if (lineBreak) {
      from = p;
      chars = 0;
    }
  }
  return from;
}
