/**
 * Pattern redaction of task output before it is stored.
 *
 * Output arrives as ordered chunks of raw bytes with boundaries anywhere. Everything here works
 * on latin1 ("binary") strings, one char per byte, so invalid UTF-8 passes through unchanged and
 * every offset is a byte offset. Each match is replaced by `[REDACTED:<rule>]`; the bytes around
 * it are kept.
 *
 * Levels: `secrets` (the default) redacts credentials; `all` also redacts personal data
 * (e-mail addresses, Luhn-valid card numbers, phone numbers); `none` passes bytes unchanged.
 *
 * How the stream is cut (all of it decided by the content alone, never by where chunks end, so
 * output is identical for every chunking of the same input):
 * - Single-line rules never match across `\n`, so complete lines are redacted as they arrive
 *   and only the incomplete last line is held back.
 * - A line that reaches LINE_HOLD_CAP (64 KiB) bytes without a newline is cut there anyway, so a
 *   stream without newlines cannot grow memory. The cut goes just after the last space or tab in
 *   the final 1/16 of the window when there is one, else at exactly the cap. Each piece is
 *   redacted on its own, so a secret that straddles such a cut can escape its rule. A BEGIN
 *   marker (below) that starts before the cap is never cut through; to know there is none, up
 *   to 128 bytes past the cap may be held.
 * - Private key blocks span lines. From a `-----BEGIN ... PRIVATE KEY-----` marker the stream is
 *   held until the matching `-----END ... PRIVATE KEY-----` (any END variant); the whole block
 *   becomes one marker. If no END arrives within KEY_HOLD_CAP (16 KiB) of the BEGIN, the 16 KiB
 *   from BEGIN are redacted anyway (fail closed) and scanning carries on after them. An
 *   unterminated block at the end of the stream is redacted to the end.
 *
 * Held-back state is small (usually the incomplete last line; at most 64 KiB + 128 bytes) and
 * serializable (`exportState` / `OutputRedactor.fromState`) because the server is stateless
 * between a task's chunk uploads.
 *
 * Speed: each line is first scanned for per-stage hints (substrings every match must contain);
 * only lines with a hint go through the rules. Rules must not match across `\n` and must treat
 * `\n` like the start/end of the text, which is what lets lines be redacted in any grouping.
 */

export type RedactionLevel = 'secrets' | 'all' | 'none';
export const REDACTION_LEVELS: readonly RedactionLevel[] = ['secrets', 'all', 'none'];
export const DEFAULT_REDACTION_LEVEL: RedactionLevel = 'secrets';

export function isRedactionLevel(value: unknown): value is RedactionLevel {
  return value === 'secrets' || value === 'all' || value === 'none';
}

/** Longest incomplete line held back before it is processed anyway. */
export const LINE_HOLD_CAP = 64 * 1024;
/** Longest private key block held back waiting for its END line before failing closed. */
export const KEY_HOLD_CAP = 16 * 1024;
/** No BEGIN/END marker is longer than this (the regexes below bound it at 96). */
const MAX_MARKER = 128;

export type RedactionRuleName =
  | 'private-key'
  | 'authorization-header'
  | 'url-password'
  | 'aws-secret-key'
  | 'aws-session-token'
  | 'gcp-private-key'
  | 'azure-storage-key'
  | 'jwt'
  | 'bearer-token'
  | 'github-token'
  | 'gitlab-token'
  | 'slack-token'
  | 'stripe-key'
  | 'npm-token'
  | 'google-api-key'
  | 'openai-key'
  | 'aws-access-key'
  | 'email'
  | 'card-number'
  | 'phone';

export interface RedactionRuleInfo {
  readonly name: RedactionRuleName;
  /** The lowest level that applies the rule: `secrets` rules also apply at `all`. */
  readonly level: 'secrets' | 'all';
  readonly description: string;
}

/** Every rule, in the order they are applied (earlier rules win where matches overlap). */
export const REDACTION_RULES: readonly RedactionRuleInfo[] = [
  { name: 'private-key', level: 'secrets', description: 'PEM/OpenSSH/PGP private key block, BEGIN through END (multi-line)' },
  { name: 'authorization-header', level: 'secrets', description: 'value of an Authorization: / Proxy-Authorization: header, up to a quote or end of line' },
  { name: 'url-password', level: 'secrets', description: 'the password in scheme://user:PASSWORD@host' },
  { name: 'aws-secret-key', level: 'secrets', description: 'labelled AWS secret access key (aws_secret_access_key = ..., SecretAccessKey: ...)' },
  { name: 'aws-session-token', level: 'secrets', description: 'labelled AWS session token (aws_session_token = ..., SessionToken: ...)' },
  { name: 'gcp-private-key', level: 'secrets', description: 'value of a JSON "private_key" field (GCP service account)' },
  { name: 'azure-storage-key', level: 'secrets', description: 'AccountKey=... / SharedAccessKey=... in Azure connection strings' },
  { name: 'jwt', level: 'secrets', description: 'JSON Web Token: three base64url segments starting eyJ' },
  { name: 'bearer-token', level: 'secrets', description: 'the token after "Bearer "' },
  { name: 'github-token', level: 'secrets', description: 'GitHub ghp_/gho_/ghu_/ghs_/ghr_ and github_pat_ tokens' },
  { name: 'gitlab-token', level: 'secrets', description: 'GitLab glpat- (and gldt-/glrt-/glptt-/glsoat-) tokens' },
  { name: 'slack-token', level: 'secrets', description: 'Slack xoxa-/xoxb-/xoxp-/xoxr-/xoxs- tokens' },
  { name: 'stripe-key', level: 'secrets', description: 'Stripe sk_live_/rk_live_ keys' },
  { name: 'npm-token', level: 'secrets', description: 'npm npm_ access tokens' },
  { name: 'google-api-key', level: 'secrets', description: 'Google API keys (AIza + 35 chars)' },
  { name: 'openai-key', level: 'secrets', description: 'OpenAI-style sk-... keys (incl. sk-proj-, sk-ant-)' },
  { name: 'aws-access-key', level: 'secrets', description: 'AWS access key ids AKIA/ASIA + 16 uppercase alphanumerics' },
  { name: 'email', level: 'all', description: 'e-mail addresses' },
  { name: 'card-number', level: 'all', description: 'card numbers: 13-19 digits, contiguous or in space/dash groups, passing Luhn' },
  { name: 'phone', level: 'all', description: 'phone numbers: E.164 (+ and 8-15 digits, optionally grouped) and North American formats' },
];

export const REDACTION_RULE_NAMES: readonly RedactionRuleName[] = REDACTION_RULES.map((r) => r.name);

export function redactionMarker(rule: RedactionRuleName): string {
  return `[REDACTED:${rule}]`;
}

// ---------------------------------------------------------------------------------------------
// Rules

type Replacer = string | ((match: string) => string);

interface RegexRule {
  readonly name: RedactionRuleName;
  /** Global; must not match across a newline, and must treat `\n` like the start or end of text. */
  readonly re: RegExp;
  /** A string with $n references, or a function of the whole match (returning it unchanged skips). */
  readonly replace: Replacer;
}

interface CustomRule {
  readonly name: RedactionRuleName;
  /** The same contract as a regex rule, hand-written for speed. */
  readonly apply: (text: string) => string;
}

type LineRule = RegexRule | CustomRule;

const M = redactionMarker;

/** A label, then `:` / `=` / `=>` / blanks, with optional quotes either side: `$1` is all of it. */
const LABEL_SEP = `["']?(?:[ \\t]*(?:=>|[:=])[ \\t]*|[ \\t]+)["']?`;

/** True for a digit string passing the Luhn check that is not one digit repeated. */
function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  let same = true;
  for (let i = digits.length - 1; i >= 0; i--) {
    let n = digits.charCodeAt(i) - 48;
    if (n !== digits.charCodeAt(0) - 48) same = false;
    if (double) {
      n *= 2;
      if (n > 9) n -= 9;
    }
    sum += n;
    double = !double;
  }
  return sum % 10 === 0 && !same;
}

/**
 * A card candidate is contiguous digits or space/dash groups; it is redacted when it (or, for a
 * grouped candidate, its longest prefix of whole groups with 13-19 digits) passes Luhn, so a
 * number followed by another group (a year, an amount) is still found.
 */
function redactCard(match: string): string {
  const groups = match.split(/[ -]/);
  for (let n = groups.length; n >= 1; n--) {
    const head = groups.slice(0, n);
    const digits = head.join('');
    if (digits.length < 13) break;
    if (digits.length <= 19 && luhnValid(digits)) {
      const end = head.reduce((len, g) => len + g.length, 0) + (n - 1);
      return M('card-number') + match.slice(end);
    }
  }
  return match;
}

const EMAIL_DOMAIN = /@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])/g;

function isEmailLocalChar(c: number): boolean {
  // A-Z a-z 0-9 . _ % + -
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;
}

/**
 * Exactly what `/(?<![L])[L]+@DOMAIN/g` (L = [A-Za-z0-9._%+-]) would replace, but found from
 * each `@` outward: a regex starting with a character class is tried at every offset, which
 * made this the slowest rule by far.
 */
function redactEmails(text: string): string {
  if (text.indexOf('@') === -1) return text;
  let out = '';
  let done = 0; // end of the last match (or 0): a match may not start before it
  EMAIL_DOMAIN.lastIndex = 0;
  for (let m = EMAIL_DOMAIN.exec(text); m; m = EMAIL_DOMAIN.exec(text)) {
    const at = m.index;
    let start = at;
    while (start > 0 && isEmailLocalChar(text.charCodeAt(start - 1))) start--;
    if (start === at || start < done) continue;
    out += text.slice(done, start) + M('email');
    done = at + m[0].length;
  }
  return done === 0 ? text : out + text.slice(done);
}

function digitCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

const SECRET_RULES: readonly LineRule[] = [
  {
    name: 'authorization-header',
    re: /(?<![A-Za-z0-9_])(authorization["']?[ \t]*:[ \t]*["']?)([^\s"'][^\r\n"']*)/gi,
    replace: `$1${M('authorization-header')}`,
  },
  {
    name: 'url-password',
    // Anchored on the literal "://" (a lookbehind first would make the regex try every offset).
    re: /:\/\/(?<=[A-Za-z0-9+.-]:\/\/)([^\s:/?#@"'<>]*:)([^\s/?#"'<>\\]+)(@)/g,
    replace: `://$1${M('url-password')}$3`,
  },
  {
    name: 'aws-secret-key',
    re: new RegExp(`(?<![A-Za-z0-9])((?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)${LABEL_SEP})([A-Za-z0-9/+=]{20,})`, 'gi'),
    replace: `$1${M('aws-secret-key')}`,
  },
  {
    name: 'aws-session-token',
    re: new RegExp(`(?<![A-Za-z0-9])((?:aws[_-]?session[_-]?token|session[_-]?token)${LABEL_SEP})([A-Za-z0-9/+=]{20,})`, 'gi'),
    replace: `$1${M('aws-session-token')}`,
  },
  {
    name: 'gcp-private-key',
    re: /("private_key"[ \t]*:[ \t]*")((?:[^"\\\r\n]|\\.)+)(")/g,
    replace: `$1${M('gcp-private-key')}$3`,
  },
  {
    name: 'azure-storage-key',
    re: /(?<![A-Za-z0-9])((?:Account|SharedAccess)Key[ \t]*=[ \t]*)([A-Za-z0-9+/]{20,}={0,2})/gi,
    replace: `$1${M('azure-storage-key')}`,
  },
  {
    name: 'jwt',
    re: /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g,
    replace: M('jwt'),
  },
  {
    // The token must look like one: 16+ chars with a digit, or punctuation inside it.
    name: 'bearer-token',
    re: /(?<![A-Za-z0-9_])(bearer[ \t]+)(?=[A-Za-z0-9._~+/-]*(?:[0-9]|[._~+/-][A-Za-z0-9]))([A-Za-z0-9._~+/-]{16,}=*)/gi,
    replace: `$1${M('bearer-token')}`,
  },
  {
    name: 'github-token',
    re: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})(?![A-Za-z0-9_])/g,
    replace: M('github-token'),
  },
  {
    name: 'gitlab-token',
    re: /(?<![A-Za-z0-9_-])gl(?:pat|dt|rt|ptt|soat)-[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*/g,
    replace: M('gitlab-token'),
  },
  {
    name: 'slack-token',
    re: /(?<![A-Za-z0-9_-])xox[abprs]-[A-Za-z0-9-]{10,}/g,
    replace: M('slack-token'),
  },
  {
    name: 'stripe-key',
    re: /(?<![A-Za-z0-9_])[sr]k_live_[A-Za-z0-9]{10,}/g,
    replace: M('stripe-key'),
  },
  {
    name: 'npm-token',
    re: /(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])/g,
    replace: M('npm-token'),
  },
  {
    name: 'google-api-key',
    re: /(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])/g,
    replace: M('google-api-key'),
  },
  {
    // At least one digit so that hyphenated words after "sk-" are left alone.
    name: 'openai-key',
    re: /(?<![A-Za-z0-9_-])sk-(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}/g,
    replace: M('openai-key'),
  },
  {
    name: 'aws-access-key',
    re: /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
    replace: M('aws-access-key'),
  },
];

const PERSONAL_RULES: readonly LineRule[] = [
  { name: 'email', apply: redactEmails },
  {
    name: 'card-number',
    re: /(?<![0-9])(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{3,6}){2,4})(?![0-9])/g,
    replace: redactCard,
  },
  {
    // E.164: + and 8-15 digits.
    name: 'phone',
    re: /(?<![A-Za-z0-9_+])\+[1-9][0-9]{7,14}(?![0-9])/g,
    replace: M('phone'),
  },
  {
    // International with groups: +44 20 7946 0958, +1 (555) 123-4567 (8-15 digits in all).
    name: 'phone',
    re: /(?<![A-Za-z0-9_+])\+[1-9][0-9]{0,2}(?:[ .-]\(?[0-9]{1,5}\)?){1,4}[ .-][0-9]{2,8}(?![0-9])/g,
    replace: (m) => {
      const n = digitCount(m);
      return n >= 8 && n <= 15 ? M('phone') : m;
    },
  },
  {
    // (555) 123-4567, 1 (555) 123 4567
    name: 'phone',
    re: /(?<![A-Za-z0-9_+.-])(?:1[ .-]?)?\([0-9]{3}\)[ .-]?[0-9]{3}[ .-][0-9]{4}(?![A-Za-z0-9_-]|\.[0-9])/g,
    replace: M('phone'),
  },
  {
    // 555-123-4567, 555.123.4567, 1-555-123-4567 (one separator throughout)
    name: 'phone',
    re: /(?<![A-Za-z0-9_+.-])(?:1[.-])?[0-9]{3}([.-])[0-9]{3}\1[0-9]{4}(?![A-Za-z0-9_-]|\.[0-9])/g,
    replace: M('phone'),
  },
];

/**
 * Per-line prefilters: a line can only match one of a stage's rules if it contains a hit of the
 * stage's hint (each alternative is a substring of every match of some rule, case-folded where
 * the rule is), so lines without a hit are passed over by one scan instead of one per rule.
 */
const SECRET_HINT = String.raw`authorization|://|secret[_-]?(?:access[_-]?)?key|session[_-]?token|"private_key"|accountkey|sharedaccesskey|eyJ|bearer|gh[pousr]_|github_pat_|gl(?:pat|dt|rt|ptt|soat)-|xox[abprs]-|[sr]k_live_|npm_|AIza|sk-|AKIA|ASIA`;
/** e-mail; E.164; (555); 13+ digits, 4 digits + separator + 3 (cards), 555-123 / 555.123 */
const PERSONAL_HINT = String.raw`@|\+[1-9]|\([0-9]{3}\)|[0-9]{3}(?:[0-9](?:[0-9]{9}|[ -][0-9]{3})|[.-][0-9]{3})`;

interface Stage {
  readonly rules: readonly LineRule[];
  /** Global; null applies the rules to the whole text. */
  readonly hint: RegExp | null;
}

/** The stages run in order; within a stage the rules run in order on each hinted line. */
function stagesFor(level: 'secrets' | 'all', prefilter: boolean): readonly Stage[] {
  const secrets: Stage = { rules: SECRET_RULES, hint: prefilter ? new RegExp(SECRET_HINT, 'gi') : null };
  if (level === 'secrets') return [secrets];
  return [secrets, { rules: PERSONAL_RULES, hint: prefilter ? new RegExp(PERSONAL_HINT, 'g') : null }];
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
  hint.lastIndex = 0;
  for (let m = hint.exec(s); m; m = hint.exec(s)) {
    const start = s.lastIndexOf('\n', m.index) + 1;
    const nl = s.indexOf('\n', m.index);
    const end = nl === -1 ? s.length : nl + 1;
    out += s.slice(done, start) + applyRules(stage.rules, s.slice(start, end));
    done = end;
    hint.lastIndex = end;
  }
  return done === 0 ? s : out + s.slice(done);
}

function redactLines(stages: readonly Stage[], s: string): string {
  for (const stage of stages) s = applyStage(stage, s);
  return s;
}

/**
 * Private key block markers. Words are bounded so a marker is at most 96 chars (MAX_MARKER), and
 * each ends in fixed dashes, so a complete match in a prefix of the stream is the same match in
 * the whole stream (which is what makes the hold-back independent of chunking).
 */
const BEGIN_RE = /-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----|---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----/g;
const END_RE = /-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----|---- END SSH2 ENCRYPTED PRIVATE KEY ----/g;
const BEGIN_AT = new RegExp(BEGIN_RE.source, 'y');
const KEY_MARKER = M('private-key');

// ---------------------------------------------------------------------------------------------
// The streaming engine, over latin1 (or any) strings

export interface RedactorOptions {
  /** Longest incomplete line held back; default LINE_HOLD_CAP. Smaller values are for tests. */
  readonly lineHoldCap?: number;
  /** Longest private key block held back; default KEY_HOLD_CAP. Smaller values are for tests. */
  readonly keyHoldCap?: number;
  /** Skip lines without a rule's hint (default true; false exists to test that it changes nothing). */
  readonly prefilter?: boolean;
}

interface Caps {
  readonly line: number;
  readonly key: number;
}

function resolveCaps(options: RedactorOptions | undefined): Caps {
  const line = options?.lineHoldCap ?? LINE_HOLD_CAP;
  const key = options?.keyHoldCap ?? KEY_HOLD_CAP;
  if (!Number.isSafeInteger(line) || line < 16) throw new RangeError(`lineHoldCap must be an integer >= 16, got ${line}`);
  if (!Number.isSafeInteger(key) || key < 1) throw new RangeError(`keyHoldCap must be an integer >= 1, got ${key}`);
  return { line, key };
}

/** Where a line that reached the cap is cut: after the last blank in the final 1/16, else at the cap. */
function softCut(p: string, lineStart: number, cap: number): number {
  const hard = lineStart + cap;
  const floor = hard - (cap >> 4);
  for (let i = hard - 1; i >= floor; i--) {
    const c = p.charCodeAt(i);
    if (c === 32 || c === 9) return i + 1;
  }
  return hard;
}

class Engine {
  private parts: string[] = [];
  private length = 0;
  /** The held-back text starts with a BEGIN marker whose END has not been seen. */
  private inKey = false;
  /** Text mode: no BEGIN marker starts before this offset of the held-back text. */
  private beginScan = 0;
  /** Key mode: no END marker starts before this offset. */
  private endScan = 0;

  constructor(
    private readonly rules: readonly Stage[],
    private readonly caps: Caps,
  ) {}

  get held(): string {
    if (this.parts.length > 1) this.parts = [this.parts.join('')];
    return this.parts[0] ?? '';
  }

  get inKeyBlock(): boolean {
    return this.inKey;
  }

  restore(held: string, inKey: boolean): void {
    if (inKey) {
      BEGIN_AT.lastIndex = 0;
      if (!BEGIN_AT.test(held)) throw new Error('redaction state is corrupt: a key block does not start with a BEGIN marker');
    }
    this.parts = held ? [held] : [];
    this.length = held.length;
    this.inKey = inKey;
    this.beginScan = 0;
    this.endScan = 0;
  }

  feed(s: string): string {
    if (!s) return '';
    this.parts.push(s);
    this.length += s.length;
    // Nothing can be released until a line completes or a cap is reached.
    const cap = this.inKey ? this.caps.key : this.caps.line + MAX_MARKER;
    if (s.indexOf('\n') === -1 && this.length < cap) return '';
    return this.run(false);
  }

  finish(): string {
    const out = this.run(true);
    this.restore('', false);
    return out;
  }

  private run(final: boolean): string {
    const p = this.held;
    const { line: lineCap, key: keyCap } = this.caps;
    const out: string[] = [];
    const emit = (from: number, to: number) => {
      if (to > from) out.push(redactLines(this.rules, from === 0 && to === p.length ? p : p.slice(from, to)));
    };
    let pos = 0;
    let beginScan = this.beginScan;
    let endScan = this.endScan;

    outer: while (pos < p.length) {
      if (this.inKey) {
        const limit = Math.min(p.length, pos + keyCap);
        const window = limit === p.length ? p : p.slice(0, limit);
        END_RE.lastIndex = Math.max(pos + 1, endScan);
        const m = END_RE.exec(window);
        if (m) pos = m.index + m[0].length;
        else if (limit === pos + keyCap) pos = limit; // fail closed: no END within the cap
        else if (final) pos = p.length; // unterminated at end of stream
        else {
          endScan = Math.max(pos + 1, limit - MAX_MARKER);
          break;
        }
        out.push(KEY_MARKER);
        this.inKey = false;
        beginScan = pos;
        continue;
      }

      BEGIN_RE.lastIndex = Math.max(pos, beginScan);
      const bm = BEGIN_RE.exec(p);
      const b = bm ? bm.index : -1;
      beginScan = bm ? b : Math.max(pos, p.length - MAX_MARKER);

      let ls = pos;
      for (;;) {
        const nl = p.indexOf('\n', ls);
        const lineEnd = nl === -1 ? p.length : nl;
        // A BEGIN that starts before its line's cap wins over cutting the line.
        if (b >= 0 && b < lineEnd && b < ls + lineCap) {
          emit(pos, b);
          pos = b;
          this.inKey = true;
          endScan = 0;
          continue outer;
        }
        if (lineEnd - ls >= lineCap) {
          // Before cutting a line that is still open, be sure no BEGIN starts before the cap.
          if (nl === -1 && b < 0 && !final && p.length < ls + lineCap + MAX_MARKER) {
            emit(pos, ls);
            pos = ls;
            break outer;
          }
          const cut = softCut(p, ls, lineCap);
          emit(pos, cut);
          pos = cut;
          continue outer;
        }
        if (nl === -1) {
          const to = final ? p.length : ls;
          emit(pos, to);
          pos = to;
          break outer;
        }
        ls = nl + 1;
      }
    }

    const rest = pos === 0 ? p : p.slice(pos);
    this.parts = rest ? [rest] : [];
    this.length = rest.length;
    this.beginScan = Math.max(0, beginScan - pos);
    this.endScan = Math.max(0, endScan - pos);
    return out.length === 1 ? (out[0] ?? '') : out.join('');
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Redacts a whole text at once: the same result as streaming it through an OutputRedactor and
 * flushing (caps count UTF-16 units here, which are bytes for latin1/ASCII text).
 */
export function redactText(level: RedactionLevel, text: string, options?: RedactorOptions): string {
  if (level === 'none') return text;
  const engine = new Engine(stagesFor(level, options?.prefilter ?? true), resolveCaps(options));
  engine.restore(text, false);
  return engine.finish();
}

interface StateV1 {
  v: 1;
  /** 1 when the held bytes start with an unterminated private key block. */
  k: 0 | 1;
  /** Held-back bytes, base64. */
  h: string;
}

/**
 * Redacts one output stream, chunk by chunk. `push` returns the bytes that are final now and
 * holds back what could still be part of a match; `flush` ends the stream and returns the rest
 * (after which the redactor is empty and may start a new stream).
 */
export class OutputRedactor {
  readonly level: RedactionLevel;
  private readonly engine: Engine | null;
  /** Level none only: bytes restored from a state taken at another level, released unchanged. */
  private carry: Buffer | null = null;

  constructor(level: RedactionLevel = DEFAULT_REDACTION_LEVEL, options?: RedactorOptions) {
    if (!isRedactionLevel(level)) throw new TypeError(`unknown redaction level: ${String(level)}`);
    this.level = level;
    const caps = resolveCaps(options);
    this.engine = level === 'none' ? null : new Engine(stagesFor(level, options?.prefilter ?? true), caps);
  }

  push(chunk: Buffer): Buffer {
    if (!this.engine) return this.takeCarry(chunk);
    const out = this.engine.feed(chunk.toString('latin1'));
    return Buffer.from(out, 'latin1');
  }

  flush(): Buffer {
    if (!this.engine) return this.takeCarry(Buffer.alloc(0));
    return Buffer.from(this.engine.finish(), 'latin1');
  }

  /** Bytes currently held back. */
  get heldBytes(): number {
    return this.engine ? this.engine.held.length : (this.carry?.length ?? 0);
  }

  /** The carried state as a short JSON string: held-back bytes (base64) and the key-block flag. */
  exportState(): string {
    const held = this.engine ? Buffer.from(this.engine.held, 'latin1') : (this.carry ?? Buffer.alloc(0));
    const state: StateV1 = { v: 1, k: this.engine?.inKeyBlock ? 1 : 0, h: held.toString('base64') };
    return JSON.stringify(state);
  }

  /** A redactor that continues a stream from `exportState()`; throws on a malformed state. */
  static fromState(level: RedactionLevel, state: string, options?: RedactorOptions): OutputRedactor {
    const redactor = new OutputRedactor(level, options);
    const parsed = parseState(state);
    const held = Buffer.from(parsed.h, 'base64');
    if (redactor.engine) redactor.engine.restore(held.toString('latin1'), parsed.k === 1);
    else if (held.length > 0) redactor.carry = held;
    return redactor;
  }

  private takeCarry(chunk: Buffer): Buffer {
    if (!this.carry) return chunk;
    const out = Buffer.concat([this.carry, chunk]);
    this.carry = null;
    return out;
  }
}

function parseState(state: string): StateV1 {
  let value: unknown;
  try {
    value = JSON.parse(state);
  } catch {
    throw new Error('redaction state is not valid JSON');
  }
  if (typeof value !== 'object' || value === null) throw new Error('redaction state is not an object');
  const { v, k, h } = value as Record<string, unknown>;
  if (v !== 1) throw new Error(`unsupported redaction state version: ${String(v)}`);
  if (k !== 0 && k !== 1) throw new Error('redaction state has an invalid key-block flag');
  if (typeof h !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(h) || h.length % 4 !== 0) throw new Error('redaction state has invalid held bytes');
  return { v, k, h };
}
