/**
 * Which rules run at which level, and how they are applied to text: line by line, and only to
 * lines that contain a stage's hint. Rules never match across `\n`, so applying them to any
 * grouping of whole lines gives the same result as applying them to the whole text.
 */
import type { RedactLevel } from '@ferry/protocol';
import { PERSONAL_HINT, PERSONAL_RULES, PERSONAL_STARTS } from './personal-rules.js';
import { pairPrefilteredHint, regexHint, type Hint } from './hint-scan.js';
import type { LineRule } from './rules.js';
import { SECRET_HINT, SECRET_HINT_PAIRS, SECRET_RULES, SECRET_STARTS } from './secret-rules.js';

export interface Stage {
  readonly rules: readonly LineRule[];
  /** Null applies the rules to the whole text. */
  readonly hint: Hint | null;
  /** Where a match of one of the rules could begin (starts.ts). */
  readonly starts: readonly RegExp[];
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

function applyRules(rules: readonly LineRule[], s: string): string {
  for (const rule of rules) {
    if ('apply' in rule) s = rule.apply(s);
    else if (typeof rule.replace === 'string') s = s.replace(rule.re, rule.replace);
    else s = s.replace(rule.re, rule.replace);
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

export function redactLines(stages: readonly Stage[], s: string): string {
  for (const stage of stages) s = applyStage(stage, s);
  return s;
}
