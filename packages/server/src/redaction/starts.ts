/**
 * "Could a match begin here?": for each rule, a pattern that matches every suffix of a partial
 * line that could still grow into a match (or into the context a match needs, like the
 * character after it). The engine releases a partial line up to the leftmost such suffix and
 * holds only that suffix back, so progress output streams while a credential split across an
 * upload is still found whole.
 *
 * Each pattern is built from a description of its rule's shape (`seq`, `alt`, `lit`, ...) whose
 * `prefix` form matches any prefix of what the `full` form matches. A description may be looser
 * than its rule (that holds a few more bytes back), never tighter (that would release the start
 * of a secret). The test suite checks every rule at every split point.
 */

/** A shape: the regex source of the whole, and of any prefix of it (including the empty one). */
export interface Shape {
  readonly full: string;
  readonly prefix: string;
}

function escape(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

/** A literal, case-folded when the pattern's flags say so. */
export function lit(s: string): Shape {
  let prefix = '';
  for (let i = s.length - 1; i >= 0; i--) prefix = `(?:${escape(s.charAt(i))}${prefix})?`;
  return { full: escape(s), prefix };
}

/** One character of a class (`[...]` source). */
export function one(cls: string): Shape {
  return { full: cls, prefix: `(?:${cls})?` };
}

/** Any number of characters of a class (or of a group); `max` bounds a run that has a bounded length in its rule. */
export function run(unit: string, max?: number): Shape {
  const q = max === undefined ? '*' : `{0,${max}}`;
  return { full: `(?:${unit})${q}`, prefix: `(?:${unit})${q}` };
}

export function opt(s: Shape): Shape {
  return { full: `(?:${s.full})?`, prefix: s.prefix };
}

export function alt(...shapes: Shape[]): Shape {
  return { full: `(?:${shapes.map((s) => s.full).join('|')})`, prefix: `(?:${shapes.map((s) => s.prefix).join('|')})` };
}

export function seq(...shapes: Shape[]): Shape {
  let full = '';
  let prefix = '';
  for (let i = shapes.length - 1; i >= 0; i--) {
    const s = shapes[i] as Shape;
    // A prefix of `s rest` is a prefix of s, or all of s and a prefix of rest.
    prefix = i === shapes.length - 1 ? s.prefix : `(?:${s.full}${prefix}|${s.prefix})`;
    full = s.full + full;
  }
  return { full, prefix };
}

/**
 * The pattern for one rule: `lookbehind` as in the rule (so a start the rule could not match at
 * is not held), then a non-empty prefix of `shape` that reaches the end of the text.
 */
export function startPattern(lookbehind: string, shape: Shape, flags = ''): RegExp {
  return new RegExp(`${lookbehind}(?=[^])${shape.prefix}$`, `g${flags}`);
}

/** Where the leftmost suffix of `text` from `from` on that could begin a match starts (`text.length` when none). */
export function holdPoint(starts: readonly RegExp[], text: string, from: number): number {
  let at = text.length;
  for (const re of starts) {
    re.lastIndex = from;
    const m = re.exec(text);
    if (m && m.index < at) at = m.index;
  }
  return at;
}
