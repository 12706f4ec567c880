/**
 * Which rules run at which level, and how they are applied to text: line by line, and only to
 * lines that contain a stage's hint. Rules never match across `\n`, so applying them to any
 * grouping of whole lines gives the same result as applying them to the whole text.
 */
import type { RedactLevel } from '@ferry/protocol';
import { PERSONAL_HINT, PERSONAL_RULES, PERSONAL_STARTS } from './personal-rules.js';
import { pairPrefilteredHint, regexHint, type Hint } from './hint-scan.js';
import type { LineRule } from './rules.js';
import type { Start } from './starts.js';
import { SECRET_HINT, SECRET_HINT_PAIRS, SECRET_RULES, SECRET_STARTS } from './secret-rules.js';

export interface Stage {
  readonly rules: readonly LineRule[];
  /** Null applies the rules to the whole text. */
  readonly hint: Hint | null;
  /** Where a match of one of the rules could begin (starts.ts). */
  readonly starts: readonly Start[];
}

/** Built once: a redactor is made for every upload, and the hint's table is 64 KiB. */
let secretHint: Hint | undefined;

/** The stages run in order; within a stage the rules run in order on each hinted line. */
export function stagesFor(level: Exclude<RedactLevel, 'none'>, prefilter: boolean): readonly Stage[] {
  secretHint ??= pairPrefilteredHint(SECRET_HINT, SECRET_HINT_PAIRS);
  const secrets: Stage = { rules: SECRET_RULES, hint: prefilter ? secretHint : null, starts: SECRET_STARTS };
  if (level === 'secrets') return [secrets];
  return [secrets, { rules: PERSONAL_RULES, hint: prefilter ? regexHint(new RegExp(PERSONAL_HINT, 'g')) : null, starts: PERSONAL_STARTS }];
}

function applyRules(rules: readonly LineRule[], s: string, skip?: (rule: LineRule) => boolean | undefined): string {
  // The text lower-cased, for the case-insensitive anchors: made when one is first needed, again after a change.
  let lower: string | null = null;
  for (const rule of rules) {
    if ('apply' in rule) {
      const before = s;
      s = rule.apply(s);
      if (s !== before) lower = null;
      continue;
    }
    // The caller may know (true or false); else the rule's anchor says.
    const absent = skip?.(rule);
    if (absent === true) continue;
    const anchor = rule.anchor;
    if (absent === undefined && anchor) {
      // toLowerCase maps every character a case-insensitive regex (without u) equates with an ASCII letter to it.
      const text = anchor.ignoreCase ? (lower ??= s.toLowerCase()) : s;
      if (!anchor.words.some((w) => text.includes(w))) continue;
    }
    const before = s;
    if (typeof rule.replace === 'string') s = s.replace(rule.re, rule.replace);
    else s = s.replace(rule.re, rule.replace);
    if (s !== before) lower = null;
  }
  return s;
}

/** Applies a stage's rules to the lines of `s` with a hint hit (rules never match across lines). */
function applyStage(stage: Stage, s: string): string {
  const hint = stage.hint;
  if (!hint) return applyRules(stage.rules, s);
  let out = '';
  let done = 0;
  for (let at = hint.first(s, 0); at !== -1; at = done < s.length ? hint.first(s, done) : -1) {
    const start = s.lastIndexOf('\n', at) + 1;
    const nl = s.indexOf('\n', at);
    const end = nl === -1 ? s.length : nl + 1;
    out += s.slice(done, start) + applyRules(stage.rules, s.slice(start, end));
    done = end;
  }
  return done === 0 ? s : out + s.slice(done);
}

/**
 * The same as redactLines for a text whose every line holds a hint of some stage (byte-scan.ts
 * found them): the rules run over the whole text at once, each stage's hint not looked for
 * again (a rule changes nothing on a line without its stage's hint, so this only saves work),
 * and `skip` passes over rules that cannot match (their hint words are absent).
 */
export function redactHintedLines(stages: readonly Stage[], s: string, skip?: (rule: LineRule) => boolean | undefined): string {
  for (const stage of stages) s = applyRules(stage.rules, s, skip);
  return s;
}

export function redactLines(stages: readonly Stage[], s: string): string {
  for (const stage of stages) s = applyStage(stage, s);
  return s;
}
