/**
 * A small ANSI renderer for task output: SGR colour and style sequences (`ESC[…m`: the 16
 * colours, their bright forms, 256 colours, 24-bit colours, bold, dim, italic, underline,
 * inverse, and their resets) become styled spans; every other escape sequence (cursor moves,
 * erasing, window titles) is dropped, so it never shows as garbage. The style in force carries
 * over from one line to the next, as in a terminal.
 */

export interface Style {
  fg?: string | undefined;
  bg?: string | undefined;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
}

export interface Segment {
  text: string;
  style: Style;
}

export const PLAIN: Style = Object.freeze({});

/** CSI sequences (ESC [ params final), OSC sequences (ESC ] … BEL or ST), and other two-byte escapes. */
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\[([0-9;:?<>=]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]/g;

/** xterm's 256-colour palette entry `n` as CSS (16–231: a 6×6×6 cube; 232–255: greys). */
function palette256(n: number): string | undefined {
  if (n < 16) return `ansi-${n}`;
  if (n < 232) {
    const v = n - 16;
    const level = (x: number): number => (x === 0 ? 0 : 55 + x * 40);
    return `rgb(${level(Math.floor(v / 36))},${level(Math.floor(v / 6) % 6)},${level(v % 6)})`;
  }
  if (n < 256) {
    const g = 8 + (n - 232) * 10;
    return `rgb(${g},${g},${g})`;
  }
  return undefined;
}

/** The colour an extended colour sequence (38;5;n or 38;2;r;g;b) names; `i` points at the 38/48. */
function extendedColour(codes: number[], i: number): { colour: string | undefined; used: number } {
  if (codes[i + 1] === 5) return { colour: palette256(codes[i + 2] ?? -1), used: 2 };
  if (codes[i + 1] === 2) {
    const [r = 0, g = 0, b = 0] = codes.slice(i + 2, i + 5);
    return { colour: `rgb(${r & 255},${g & 255},${b & 255})`, used: 4 };
  }
  return { colour: undefined, used: 0 };
}

/** The style after one SGR sequence's codes. */
function applySgr(style: Style, params: string): Style {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  let s: Style = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] ?? 0;
    if (c === 0) s = {};
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 7) s.inverse = true;
    else if (c === 22) s.bold = s.dim = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c === 27) s.inverse = false;
    else if (c >= 30 && c <= 37) s.fg = `ansi-${c - 30}`;
    else if (c >= 90 && c <= 97) s.fg = `ansi-${c - 90 + 8}`;
    else if (c >= 40 && c <= 47) s.bg = `ansi-${c - 40}`;
    else if (c >= 100 && c <= 107) s.bg = `ansi-${c - 100 + 8}`;
    else if (c === 39) s.fg = undefined;
    else if (c === 49) s.bg = undefined;
    else if (c === 38 || c === 48) {
      const { colour, used } = extendedColour(codes, i);
      if (c === 38) s.fg = colour;
      else s.bg = colour;
      i += used;
    }
  }
  return isPlain(s) ? PLAIN : s;
}

function isPlain(s: Style): boolean {
  return !s.fg && !s.bg && !s.bold && !s.dim && !s.italic && !s.underline && !s.inverse;
}

/** One line's text as styled segments, starting in `style`; also the style in force at its end. */
export function parseLine(line: string, style: Style): { segments: Segment[]; end: Style } {
  const segments: Segment[] = [];
  let at = 0;
  let current = style;
  ESCAPES.lastIndex = 0;
  for (let m = ESCAPES.exec(line); m; m = ESCAPES.exec(line)) {
    if (m.index > at) segments.push({ text: line.slice(at, m.index), style: current });
    if (m[2] === 'm') current = applySgr(current, m[1] ?? '');
    else if (m[0] === '\t') segments.push({ text: '\t', style: current });
    at = ESCAPES.lastIndex;
  }
  if (at < line.length) segments.push({ text: line.slice(at), style: current });
  return { segments, end: current };
}

/** The style at the end of a line, without building its segments (for lines not on screen). */
export function endStyle(line: string, style: Style): Style {
  if (!line.includes('\x1b[')) return style;
  let current = style;
  // eslint-disable-next-line no-control-regex
  for (const m of line.matchAll(/\x1b\[([0-9;:]*)m/g)) current = applySgr(current, m[1] ?? '');
  return current;
}

/** The class names of a style (the 16 colours are classes; other colours go in `colour`). */
export function styleClasses(s: Style): { className: string; color?: string | undefined; background?: string | undefined } {
  let fg = s.fg;
  let bg = s.bg;
  if (s.inverse) [fg, bg] = [bg ?? 'ansi-inverse-fg', fg ?? 'ansi-inverse-bg'];
  const classes: string[] = [];
  let color: string | undefined;
  let background: string | undefined;
  if (fg?.startsWith('ansi-')) classes.push(`fg-${fg}`);
  else color = fg;
  if (bg?.startsWith('ansi-')) classes.push(`bg-${bg}`);
  else background = bg;
  if (s.bold) classes.push('b');
  if (s.dim) classes.push('dim');
  if (s.italic) classes.push('i');
  if (s.underline) classes.push('u');
  return { className: classes.join(' '), color, background };
}
