/**
 * What the server sends cannot drive the operator's terminal: escape sequences in an agent's
 * name, a task's reason or an error message are shown as text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { safeJson, terminalSafe, terminalSafeLines } from '../src/terminal.js';

const TITLE = '\u001b]0;pwned\u0007';
const CLEAR = '\u001b[2J\u001b[H';
const CLIPBOARD = '\u001b]52;c;ZWNobyBoaQ==\u0007';
const C1_CSI = '\u009b2J';

test('table cells and fields: every control character becomes visible text, on one line', () => {
  const shown = terminalSafe(`agent${TITLE}${CLEAR}${CLIPBOARD}${C1_CSI}\r\nname\t\u007f`);
  assert.equal(shown, 'agent\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H\\x1b]52;c;ZWNobyBoaQ==\\x07\\x9b2J\\x0d\\x0aname\\x09\\x7f');
  // eslint-disable-next-line no-control-regex -- the check itself
  assert.doesNotMatch(shown, /[\u0000-\u001f\u007f-\u009f]/);
});

test('messages keep their lines and tabs, and nothing else', () => {
  assert.equal(terminalSafeLines(`line 1\n\tline 2${CLEAR}`), 'line 1\n\tline 2\\x1b[2J\\x1b[H');
});

test('ordinary text, including non-ASCII, is unchanged', () => {
  for (const text of ['web-1', 'Grüße, 東京 🚀', 'a "quoted" \\ value']) {
    assert.equal(terminalSafe(text), text);
    assert.equal(terminalSafeLines(text), text);
  }
});

test('JSON output escapes DEL and C1 as well as C0, and still parses to the same value', () => {
  const value = { name: `x${TITLE}${C1_CSI}\u007f` };
  const json = safeJson(value);
  // eslint-disable-next-line no-control-regex -- the check itself
  assert.doesNotMatch(json.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f]/);
  assert.deepEqual(JSON.parse(json), value);
});
