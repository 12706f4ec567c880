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
 * Where a match could begin: a pattern that matches from there to the end of the text, or a
 * function giving the leftmost such place at or after `from` (see StartFunction).
 */
export type Start = RegExp | StartFunction;
/** The leftmost place in [from, limit) where a match could begin, or `limit` (or any place at or past it). */
type StartFunction = (text: string, from: number, limit: number) => number;

/** Each pattern's shape on its own (no lookbehind), to find the characters a match can begin with. */
const shapes = new WeakMap<RegExp, RegExp>();

/**
 * The pattern for one rule: `lookbehind` as in the rule (so a start the rule could not match at
 * is not held), then a non-empty prefix of `shape` that reaches the end of the text.
 */
export function startPattern(lookbehind: string, shape: Shape, flags = ''): RegExp {
  const re = new RegExp(`${lookbehind}(?=[^])${shape.prefix}$`, `g${flags}`);
  shapes.set(re, new RegExp(`^(?=[^])${shape.prefix}$`, flags));
  return re;
}

const BLANK = (c: number): boolean => c === 32 || c === 9;

/**
 * The same start as `startPattern(lookbehind, seq(head, run(runClass)), flags)`, found in linear
 * time, for a head that holds at most `headMax` characters other than blanks (space, tab) in any
 * match. As a pattern, each place where the head could begin is tried to the end of the text
 * (the run must reach it): "AccountKey=" 5,000 times and a `!` took a third of a second. Here a
 * place is tried only if the head could reach past the last character the run cannot hold, or
 * if the text ends within the head: a few places per line, each once.
 */
export function startWithRun(lookbehind: string, head: Shape, runClass: string, headMax: number, flags = ''): Start {
  const inHead = new RegExp(`${lookbehind}(?=[^])${head.prefix}$`, `y${flags}`);
  const whole = new RegExp(`${lookbehind}(?:${head.full})(?:${runClass})*$`, `y${flags}`);
  const shape = new RegExp(`^(?=[^])${head.prefix}$`, flags);
  const unit = new RegExp(`^(?:${runClass})$`, flags);
  const first = new Uint8Array(256).map((_, c) => (shape.test(String.fromCharCode(c)) ? 1 : 0));
  const inRun = new Uint8Array(256).map((_, c) => (unit.test(String.fromCharCode(c)) ? 1 : 0));
  const at = (re: RegExp, text: string, p: number): boolean => {
    re.lastIndex = p;
    return re.test(text);
  };
  // Which first two characters a match of two or more can begin with (made at the first call).
  let pairs: Uint8Array | null = null;
  const firstPairs = (): Uint8Array => {
    const table = new Uint8Array(65536);
    for (let c = 0; c < 256; c++) {
      if (first[c] === 1) for (let d = 0; d < 256; d++) table[(c << 8) | d] = shape.test(String.fromCharCode(c, d)) ? 1 : 0;
    }
    return table;
  };
  const start = (text: string, from: number, limit: number): number => {
    const len = text.length;
    pairs ??= firstPairs();
    let z = -2; // the last character the run cannot hold (a head that matches reaches past it); -2: not looked for yet
    let nonBlank = 0; // in text[p, z]
    for (let p = from; p < limit; p++) {
      const c = text.charCodeAt(p);
      const d = p + 1 < len ? text.charCodeAt(p + 1) : -1;
      if (c > 255 || d > 255 || (d === -1 ? first[c] === 1 : pairs[(c << 8) | d] === 1)) {
        if (at(inHead, text, p)) return p;
        if (z === -2) {
          z = len - 1;
          while (z >= p && inRun[text.charCodeAt(z)] === 1) z--;
          for (let i = p; i <= z; i++) if (!BLANK(text.charCodeAt(i))) nonBlank++;
        }
        if ((p > z || nonBlank <= headMax) && at(whole, text, p)) return p;
      }
      if (z !== -2 && p <= z && !BLANK(c)) nonBlank--;
    }
    return limit;
  };
  return sameAs(start, startPattern(lookbehind, seq(head, run(runClass)), flags));
}

/** For a start written as a function, the pattern it stands for (the tests compare the two). */
const patterns = new WeakMap<Start, RegExp>();

export function sameAs(start: StartFunction, pattern: RegExp): Start {
  patterns.set(start, pattern);
  return start;
}

/** A start as a pattern: itself, or the pattern a function stands for. */
export function patternOf(start: Start): RegExp {
  const re = typeof start === 'function' ? patterns.get(start) : start;
  if (!re) throw new Error('a start function without its pattern');
  return re;
}

/** Starts compiled for holdPoint: for each byte, the patterns (sticky) whose match can begin with it. */
interface Compiled {
  /** By the character a match begins with (for a match of one character: at the end of the text). */
  readonly byChar: readonly (readonly RegExp[])[];
  /** By the two characters a longer match begins with (first << 8 | second). */
  readonly byPair: readonly (readonly RegExp[])[];
  /** By the three characters a still longer match begins with, filled in as they are met (from byPair's lists). */
  readonly byTriple: Map<number, readonly RegExp[]>;
  /** Each pattern's shape (no lookbehind), by its sticky form. */
  readonly shapeOf: ReadonlyMap<RegExp, RegExp>;
  /** Patterns whose first characters are not known (no shape recorded): tried everywhere. */
  readonly everywhere: readonly RegExp[];
  /** Every pattern, for a character above 255 (not from a latin1 string). */
  readonly all: readonly RegExp[];
  readonly fns: readonly StartFunction[];
}

const compiled = new WeakMap<readonly Start[], Compiled>();
const NONE: RegExp[] = [];

function compile(starts: readonly Start[]): Compiled {
  const byChar: RegExp[][] = Array.from({ length: 256 }, () => []);
  const byPair: RegExp[][] = new Array<RegExp[]>(65536).fill(NONE);
  const pairShape = new Map<RegExp, RegExp>();
  const everywhere: RegExp[] = [];
  const all: RegExp[] = [];
  const fns: StartFunction[] = [];
  for (const start of starts) {
    if (typeof start === 'function') {
      fns.push(start);
      continue;
    }
    const sticky = new RegExp(start.source, start.flags.replace('g', '') + 'y');
    all.push(sticky);
    const shape = shapes.get(start);
    if (!shape) everywhere.push(sticky);
    // A non-empty prefix of the shape starts with c exactly when c alone is one (prefixes of prefixes are prefixes).
    else {
      pairShape.set(sticky, shape);
      for (let c = 0; c < 256; c++) if (shape.test(String.fromCharCode(c))) byChar[c]?.push(sticky);
    }
  }
  // Likewise, a match of two or more characters begins with a two-character prefix of the shape.
  for (let c = 0; c < 256; c++) {
    for (const sticky of byChar[c] ?? []) {
      const shape = pairShape.get(sticky);
      for (let d = 0; d < 256; d++) {
        if (!shape?.test(String.fromCharCode(c, d))) continue;
        const key = (c << 8) | d;
        if (byPair[key] === NONE) byPair[key] = [];
        byPair[key]?.push(sticky);
      }
    }
  }
  return { byChar, byPair, byTriple: new Map(), shapeOf: pairShape, everywhere, all, fns };
}

/**
 * Where the leftmost suffix of `text` from `from` on that could begin a match starts
 * (`text.length` when none). Each pattern is tried only where a match of it can begin (by its
 * first two characters, or the last one), leftmost first, so a partial line costs a table
 * look-up per byte and rarely a pattern, not every pattern at every byte.
 */
export function holdPoint(starts: readonly Start[], text: string, from: number): number {
  let c = compiled.get(starts);
  if (!c) compiled.set(starts, (c = compile(starts)));
  let at = text.length;
  for (const fn of c.fns) at = Math.min(at, fn(text, from, at));
  const { byChar, byPair, everywhere, all } = c;
  const last = text.length - 1;
  for (let p = from; p < at; p++) {
    const code = text.charCodeAt(p);
    let list: readonly RegExp[] | undefined;
    if (p === last) list = code < 256 ? byChar[code] : all;
    else {
      const next = text.charCodeAt(p + 1);
      if (code > 255 || next > 255) list = all;
      else {
        list = byPair[(code << 8) | next];
        // Most pairs begin no match: nothing to try (the common case, kept short).
        if (list === NONE && everywhere.length === 0) continue;
        if (list !== undefined && list.length > 0 && p + 1 < last) list = byTriple(c, list, code, next, text.charCodeAt(p + 2));
      }
    }
    const tries = list ?? all;
    for (let i = 0; i < tries.length; i++) if (stickyAt(tries[i]!, text, p)) return p;
    for (let i = 0; i < everywhere.length; i++) if (stickyAt(everywhere[i]!, text, p)) return p;
  }
  return at;
}

/** Of a pair's patterns, those whose shape has the three characters as a prefix (remembered: a line meets few distinct ones). */
function byTriple(c: Compiled, pairList: readonly RegExp[], a: number, b: number, third: number): readonly RegExp[] {
  if (third > 255) return pairList;
  const key = (a << 16) | (b << 8) | third;
  let list = c.byTriple.get(key);
  if (list === undefined) {
    const prefix = String.fromCharCode(a, b, third);
    list = pairList.filter((re) => c.shapeOf.get(re)?.test(prefix) ?? true);
    if (list.length === 0) list = NONE;
    // At most 256 entries per pair with patterns; bounded, but keep it small if output is very varied.
    if (c.byTriple.size > 200_000) c.byTriple.clear();
    c.byTriple.set(key, list);
  }
  return list;
}

function stickyAt(re: RegExp, text: string, p: number): boolean {
  re.lastIndex = p;
  return re.test(text);
}
