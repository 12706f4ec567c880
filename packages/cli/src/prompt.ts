/** Reading values that must never be on a command line: secrets, passwords, tokens. */
import { openSync } from 'node:fs';
import { emitKeypressEvents } from 'node:readline';
import { WriteStream } from 'node:tty';
import { read } from 'read';
import { UsageError } from './errors.js';

/**
 * A hidden prompt on a terminal. `read` (npm's own prompt, on readline) does the line editing:
 * arrows move the cursor instead of landing in the value, backspace removes whole characters.
 * Ctrl-C cancels; Ctrl-D, which readline would swallow silently, cancels too.
 */
export async function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  // The prompt goes to the terminal even when stderr is redirected (`2>log`), and `terminal`
  // makes read switch echo off whatever stderr is: the value must never appear on screen.
  const output = process.stderr.isTTY ? process.stderr : new WriteStream(openSync('/dev/tty', 'w'));
  emitKeypressEvents(stdin);
  let onKey: ((s: string | undefined, key: { ctrl?: boolean; name?: string } | undefined) => void) | undefined;
  const endOfInput = new Promise<never>((_resolve, reject) => {
    onKey = (_s, key) => {
      if (key?.ctrl && key.name === 'd') reject(new UsageError('cancelled (Ctrl-D): no value was set'));
    };
    stdin.on('keypress', onKey);
  });
  try {
    return await Promise.race([read({ prompt, silent: true, replace: '', terminal: true, output }), endOfInput]);
  } catch (err) {
    if (err instanceof Error && err.message === 'canceled') throw new UsageError('cancelled (Ctrl-C): no value was set');
    throw err;
  } finally {
    if (onKey) stdin.off('keypress', onKey);
    if (output !== process.stderr) output.destroy();
  }
}

/** All of stdin (a pipe), one trailing newline dropped. */
export async function readStdinText(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** The value from a hidden prompt (terminal) or from stdin (a pipe; one trailing newline dropped). */
export async function readHiddenOrStdin(prompt: string): Promise<string> {
  return process.stdin.isTTY ? promptHidden(prompt) : readStdinText();
}
