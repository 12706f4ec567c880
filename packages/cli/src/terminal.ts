/**
 * Text that came from the server (agent names, host names, reasons, error messages) is shown
 * with its control characters escaped: an agent named `\e]0;…\a` must not retitle, clear or
 * write the clipboard of the operator's terminal. C0 controls, DEL and the C1 range (which some
 * terminals read as 8-bit CSI/OSC) become visible `\xNN`; tabs and newlines are kept only where
 * a message may span lines. Task output printed by `ferry run` and `ferry task logs` stays raw on
 * purpose: it is the task's own output, byte for byte.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
// eslint-disable-next-line no-control-regex -- the same, sparing tab and newline
const CONTROL_BUT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

const hex = (c: string): string => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;

/** For one table cell or field: every control character escaped, the text stays on one line. */
export function terminalSafe(text: string): string {
  return text.replace(CONTROL, hex);
}

/** For messages that may span lines: control characters escaped, tabs and newlines kept. */
export function terminalSafeLines(text: string): string {
  return text.replace(CONTROL_BUT_LINES, hex);
}

/** JSON for a terminal or a pipe: JSON.stringify escapes C0 but not DEL or C1; those too. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
