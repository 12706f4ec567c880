/**
 * What `ferry` loads to start: the command definitions only, never the protocol's schemas (zod),
 * which would cost every invocation tens of milliseconds. Lists the definitions show in help are
 * written out there, and checked here against the protocol.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { WEBHOOK_EVENTS } from '@ferry/protocol';
import { EVENTS_HELP } from '../src/commands/webhook.js';

const COMMANDS = fileURLToPath(new URL('../src/commands', import.meta.url));

test('command definitions import no runtime value from @ferry/protocol (types only)', () => {
  for (const file of readdirSync(COMMANDS)) {
    const text = readFileSync(join(COMMANDS, file), 'utf8');
    assert.doesNotMatch(text, /^import \{[^}]*\} from '@ferry\/protocol'/m, `${file} loads @ferry/protocol at start-up`);
  }
});

test("webhook create's help lists exactly the protocol's events", () => {
  assert.deepEqual(EVENTS_HELP.split(', '), [...WEBHOOK_EVENTS]);
});
