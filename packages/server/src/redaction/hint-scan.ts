/**
 * Finding a stage's hint fast. The secret hint is a case-insensitive alternation of about
 * twenty words; V8 runs it at every position (about 8 ms per MiB of output on the bench
 * machine, most of the server's redaction time). Every word's first two characters come from a
 * short list, so a plain loop looks up each pair of bytes in a table first and runs the regex
 * (sticky) only where a word could start: about a tenth of the time, with the same answers.
 */

/** Where a stage's hint first occurs in `s` at or after `from`, or -1. */
export interface Hint {
  first(s: string, from: number): number;
}

/** A hint as a global regex, run as it is. */
export function regexHint(re: RegExp): Hint {
  return {
    first(s, from) {
      re.lastIndex = from;
      const m = re.exec(s);
      return m ? m.index : -1;
    },
  };
}

/** ASCII letters to lower case; other bytes change too, which only adds candidates. */
const fold = (c: number): number => c | 0x20;

/**
 * A case-insensitive hint whose every match starts with one of `pairs` (two ASCII characters,
 * any case): the table holds the folded pairs, and a candidate is confirmed by the regex at
 * that position. With the regex's `i` flag and no `u`, no byte above 127 matches an ASCII
 * letter, so folding the bytes can only add candidates, never lose one.
 */
export function pairPrefilteredHint(source: string, pairs: readonly string[]): Hint {
  const table = new Uint8Array(65536);
  for (const pair of pairs) {
    if (pair.length !== 2) throw new Error(`hint pair must be two characters: ${JSON.stringify(pair)}`);
    table[(fold(pair.charCodeAt(0)) << 8) | fold(pair.charCodeAt(1))] = 1;
  }
  const sticky = new RegExp(source, 'iy');
  return {
    first(s, from) {
      // The pair ending at i + 1, kept as (previous byte << 8 | this byte): one read per byte.
      // Folded bytes stay below 256 in a latin1 string; anything above only adds candidates.
      let pair = fold(s.charCodeAt(from)) & 0xff;
      for (let i = from + 1; i < s.length; i++) {
        pair = ((pair << 8) | (fold(s.charCodeAt(i)) & 0xff)) & 0xffff;
        if (table[pair] === 0) continue;
        sticky.lastIndex = i - 1;
        if (sticky.test(s)) return i - 1;
      }
      return -1;
    },
  };
}
