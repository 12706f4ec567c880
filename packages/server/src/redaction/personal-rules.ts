/**
 * Level `all` only: personal data (e-mail addresses, Luhn-valid card numbers, phone numbers),
 * applied after the secret rules.
 */
import { redactionMarker as M, type LineRule } from './rules.js';
import { alt, lit, one, opt, run, sameAs, seq, startPattern, type Start } from './starts.js';

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

export const PERSONAL_RULES: readonly LineRule[] = [
  { name: 'email', apply: redactEmails },
  {
    name: 'card-number',
    re: /(?<![0-9])(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{3,6}){2,4})(?![0-9])/g,
    replace: redactCard,
  },
  {
    // E.164: + and 8-15 digits.
    name: 'phone',
    anchor: { words: ['+'] },
    re: /(?<![A-Za-z0-9_+])\+[1-9][0-9]{7,14}(?![0-9])/g,
    replace: M('phone'),
  },
  {
    // International with groups: +44 20 7946 0958, +1 (555) 123-4567 (8-15 digits in all).
    name: 'phone',
    anchor: { words: ['+'] },
    re: /(?<![A-Za-z0-9_+])\+[1-9][0-9]{0,2}(?:[ .-]\(?[0-9]{1,5}\)?){1,4}[ .-][0-9]{2,8}(?![0-9])/g,
    replace: (m) => {
      const n = digitCount(m);
      return n >= 8 && n <= 15 ? M('phone') : m;
    },
  },
  {
    // (555) 123-4567, 1 (555) 123 4567
    name: 'phone',
    anchor: { words: ['('] },
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

/** Lines that can hold personal data: e-mail; E.164; (555); 13+ digits, 4 digits + separator + 3 (cards), 555-123 / 555.123 */
export const PERSONAL_HINT = String.raw`@|\+[1-9]|\([0-9]{3}\)|[0-9]{3}(?:[0-9](?:[0-9]{9}|[ -][0-9]{3})|[.-][0-9]{3})`;

/** A-Z a-z 0-9 . - (what an address's domain part may hold so far). */
function isDomainChar(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 46 || c === 45;
}

/**
 * Where an e-mail address could begin: the leftmost place from which the rest of the text is
 * `L+` or `L+@D*` (L the local part's characters, D the domain's), found from the end of the
 * text in one pass. The pattern `[L][L]*(?:@[D]*)?$` does the same, but a regex tries it at
 * every byte of a run of L, each time to the run's end: quadratic (seconds for a 64 KiB line).
 */
function emailStart(text: string, from: number): number {
  const end = text.length;
  let i = end;
  while (i > from && isEmailLocalChar(text.charCodeAt(i - 1))) i--; // L+ (D is within L)
  const plain = i < end ? i : end;
  // L+@D*: the run above is D*, or the `@` ends the text.
  let d = end;
  while (d > from && isDomainChar(text.charCodeAt(d - 1))) d--;
  if (d > from && text.charCodeAt(d - 1) === 64) {
    let l = d - 1;
    while (l > from && isEmailLocalChar(text.charCodeAt(l - 1))) l--;
    if (l < d - 1) return l;
  }
  return plain;
}

const D = one('[0-9]');
const digits = (n: number) => Array.from({ length: n }, () => D);

/**
 * Where a personal-data match could begin (starts.ts). An e-mail address can begin with any
 * word, so at level `all` the last word of a partial line is held back until a byte that no
 * address may contain (a blank, `/`, `:`...) follows it. Card and phone numbers follow their
 * rules' shapes closely (a count like "50000 " cannot begin one) and have bounded lengths, so
 * what is held for them is bounded too. These rules run after the secret rules, so the byte
 * before a match may have become the `]` of a marker: only a start with a digit looks at it, for
 * a digit before it (no secret match ends right before a digit: each would take the digit, or
 * fail on it).
 */
export const PERSONAL_STARTS: readonly Start[] = [
  sameAs(emailStart, startPattern('', seq(one('[A-Za-z0-9._%+-]'), run('[A-Za-z0-9._%+-]'), lit('@'), run('[A-Za-z0-9.-]')))),
  // Cards: 13-19 digits, or 4 digits and up to 4 groups of a separator and 3-6 digits.
  startPattern('(?<![0-9])', alt(seq(D, run('[0-9]', 19)), seq(...digits(4), run('[ -][0-9]{3,6}', 4), opt(seq(one('[ -]'), run('[0-9]', 6)))))),
  // E.164 and international groups: + and at most 47 more bytes.
  startPattern('', seq(lit('+'), one('[1-9]'), run('[0-9 .()-]', 46))),
  // North American, (555) 123-4567 or 555-123-4567, optionally after 1 (a "." after it waits for the byte that says whether it ends there).
  startPattern('', seq(lit('('), ...digits(3), lit(')'), opt(one('[ .-]')), ...digits(3), one('[ .-]'), ...digits(4), opt(lit('.')))),
  startPattern(
    '(?<![0-9])',
    alt(
      seq(lit('1'), opt(one('[ .-]')), lit('('), ...digits(3), lit(')'), opt(one('[ .-]')), ...digits(3), one('[ .-]'), ...digits(4), opt(lit('.'))),
      seq(opt(seq(lit('1'), one('[.-]'))), ...digits(3), one('[.-]'), ...digits(3), one('[.-]'), ...digits(4), opt(lit('.'))),
    ),
  ),
];
