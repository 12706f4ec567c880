/**
 * The spawner (executor/spawner.ts): the small process that forks bwrap so the agent is not
 * forked per sandbox. Each launch gets its own pipes (never another's), its child starts as a
 * child of the agent would (only its own descriptors, no blocked or ignored signal, its own
 * session), exits are reported with their status, and the spawner dies with the process that
 * started it, even when that one is killed with SIGKILL. Real processes; Linux only.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { shimSyscalls } from '../src/executor/bubblewrap-command.js';
import { spawner } from '../src/executor/spawner.js';

const syscalls = shimSyscalls();
const skip = process.platform !== 'linux' || !syscalls || !existsSync('/usr/bin/perl') ? 'needs Linux, perl and a known architecture' : false;
const PERL = '/usr/bin/perl';

function text(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    stream.on('data', (d: Buffer) => (s += d.toString()));
    stream.once('end', () => resolve(s));
  });
}

test('launches at once each get their own pipes, inputs and exit status', { skip }, async () => {
  const sp = spawner(PERL, syscalls?.prctl ?? 0, syscalls?.signalfd4 ?? 0);
  // Each child: its input on fd 3, what arrives on stdin and on its pipe fd 5, echoed to stdout and fd 6, exit code = its number.
  const script = 'read -r a <&3; read -r b; read -r c <&5; echo "$a $b $c"; echo "$c" >&6; echo "err $a" >&2; exit "$a"';
  const runs = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      sp
        .launch({
          argv: ['/bin/sh', '-c', script],
          inputs: new Map([[3, `${i + 1}\n`]]),
          pipes: new Map([
            [5, 'in'],
            [6, 'out'],
          ]),
        })
        .then(async (s) => {
          const [out, err, back] = [text(s.stdout), text(s.stderr), text(s.pipes.get(6) as Readable)];
          s.stdin.end(`stdin-${i + 1}\n`);
          (s.pipes.get(5) as Writable).end(`pipe-${i + 1}\n`);
          return { i: i + 1, out: await out, err: await err, back: await back, exit: await s.exited };
        }),
    ),
  );
  for (const r of runs) {
    assert.equal(r.out, `${r.i} stdin-${r.i} pipe-${r.i}\n`, `launch ${r.i} read only its own input and pipes`);
    assert.equal(r.back, `pipe-${r.i}\n`);
    assert.equal(r.err, `err ${r.i}\n`);
    assert.deepEqual(r.exit, { code: r.i, signal: null });
  }
});

test(
  'a child starts as a child of the agent would: only its own descriptors, no blocked or ignored signal, its own session; a kill is reported',
  { skip },
  async () => {
    const sp = spawner(PERL, syscalls?.prctl ?? 0, syscalls?.signalfd4 ?? 0);
    const s = await sp.launch({ argv: ['/bin/sleep', '60'], inputs: new Map([[3, 'x']]), pipes: new Map([[5, 'out']]) });
    s.stdin.end();
    // Looked at from outside, once it runs sleep (the spawner answers right after its fork); sleep opens nothing of its own.
    for (const end = Date.now() + 10_000; !readFileSync(`/proc/${s.pid}/cmdline`, 'utf8').startsWith('/bin/sleep'); await new Promise((r) => setTimeout(r, 5)))
      if (Date.now() > end) assert.fail('the child never ran sleep');
    const fds = readdirSync(`/proc/${s.pid}/fd`)
      .map(Number)
      .sort((a, b) => a - b);
    assert.deepEqual(fds, [0, 1, 2, 3, 5], 'stdio, the input and the pipe asked for; nothing of the spawner leaked');
    const status = readFileSync(`/proc/${s.pid}/status`, 'utf8');
    assert.match(status, /^SigBlk:\s+0+$/m, 'no blocked signal (the spawner blocks SIGCHLD for itself)');
    assert.match(status, /^SigIgn:\s+0+$/m, 'no ignored signal (the spawner ignores SIGPIPE for itself)');
    const stat = readFileSync(`/proc/${s.pid}/stat`, 'utf8');
    assert.equal(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]), s.pid, 'it leads its own session');
    process.kill(s.pid, 'SIGKILL');
    assert.deepEqual(await s.exited, { code: null, signal: 'SIGKILL' });
  },
);

test('the spawner dies with the process that started it, even one killed with SIGKILL', { skip }, async () => {
  const source = fileURLToPath(new URL('../src/executor/spawner.ts', import.meta.url));
  const code = `
    import { spawner } from ${JSON.stringify(source)};
    const s = await spawner(${JSON.stringify(PERL)}, ${syscalls?.prctl ?? 0}, ${syscalls?.signalfd4 ?? 0}).launch({ argv: ['/bin/sleep', '60'], inputs: new Map(), pipes: new Map() });
    console.log(s.pid);
    setInterval(() => {}, 1 << 30);`;
  const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(parent.stdout, 'data')) as [Buffer];
    const child = Number(line.toString().trim());
    const spawnerPid = Number(readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
    assert.match(readFileSync(`/proc/${spawnerPid}/cmdline`, 'utf8'), /^\/usr\/bin\/perl\0-e\0/, 'the sleep is a child of the spawner');
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    for (const end = Date.now() + 10_000; existsSync(`/proc/${spawnerPid}`); await new Promise((r) => setTimeout(r, 20)))
      if (Date.now() > end) assert.fail('the spawner outlived its parent');
    process.kill(child, 'SIGKILL'); // a plain sleep has no --die-with-parent (bwrap has)
  } finally {
    parent.kill('SIGKILL');
  }
});
