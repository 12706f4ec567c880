/**
 * Progress output streams under every redaction level: a real server, its embedded agent, a
 * sandboxed task that rewrites one line with `\r` (no newline) and sleeps between steps, read
 * live by `ferry task logs -f`. And a token printed in two halves with a pause between them
 * (so they reach the server in different uploads) is stored redacted, its first half never
 * readable while the task waits.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFerryServer, taskShow, waitFor, waitForAgents, type FerryProcess, type ServerHandle } from '../helpers/ferry.js';

const STEPS = 4;
const MASKED_VALUE = 'q7Zx-progress-secret-92kLm';
/** Long against the ~250 ms upload flush, so "seen before the next step" is about order, not a tight timing. */
const STEP_SECONDS = 3;

async function detach(server: ServerHandle, target: string, script: string): Promise<string> {
  const r = await server.cli(['run', target, '--detach', '-c', script]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function succeeded(server: ServerHandle, id: string): Promise<void> {
  const t = await waitFor(
    async () => {
      const s = await taskShow(server, id);
      return ['succeeded', 'failed', 'error', 'lost', 'cancelled', 'timed_out'].includes(s.status) ? s : undefined;
    },
    60_000,
    `task ${id} ends`,
  );
  assert.equal(t.status, 'succeeded', JSON.stringify(t));
}

/** Follows a task's output with the CLI; `seen` says what had arrived when `want` first did. */
async function seenWhen(follow: FerryProcess, want: string): Promise<string> {
  return waitFor(() => (follow.stdout.includes(want) ? follow.stdout : undefined), 30_000, JSON.stringify(want));
}

describe('progress output streams under redaction', () => {
  let server: ServerHandle;

  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
    for (const level of ['none', 'secrets', 'all']) {
      const r = await server.cli(['target', 'create', `progress-${level}`, '--type', 'shell', '--redact', level]);
      assert.equal(r.code, 0, r.stderr);
    }
    // The agent's masker holds back what could begin a secret's value too: a target with one.
    assert.equal((await server.cli(['target', 'create', 'progress-masked', '--type', 'shell'])).code, 0);
    const set = await server.cli(['secret', 'set', 'progress-masked', 'API_TOKEN'], { input: MASKED_VALUE });
    assert.equal(set.code, 0, set.stderr);
  });
  after(async () => server?.stop());

  // The levels run at once (the agent runs several tasks): each waits on its own sleeps.
  it('a \\r progress line without a newline is readable before the task prints the next step, at none, secrets and all, and with a secret masked', async () => {
    const progress = `for i in $(seq 1 ${STEPS}); do printf '\\rprogress %s/${STEPS}' "$i"; sleep ${STEP_SECONDS}; done; echo`;
    const expected = Array.from({ length: STEPS }, (_, i) => `\rprogress ${i + 1}/${STEPS}`).join('') + '\n';
    await Promise.all(
      (['none', 'secrets', 'all', 'masked'] as const).map(async (level) => {
        const script = level === 'masked' ? `echo "using $API_TOKEN"; ${progress}` : progress;
        const id = await detach(server, `progress-${level}`, script);
        const follow = server.spawnCli(['task', 'logs', id, '--follow']);
        try {
          for (let step = 1; step < STEPS; step++) {
            // At `all` an e-mail address or card number could begin with the last word of a
            // line ("4" of "1/4"), so that word waits for the byte after it (the next `\r`).
            const shown = level === 'all' ? `progress ${step}/` : `progress ${step}/${STEPS}`;
            const seen = await seenWhen(follow, shown);
            assert.ok(
              !seen.includes(`progress ${step + 1}/`),
              `${level}: step ${step} was readable only after step ${step + 1} was printed: ${JSON.stringify(seen)}`,
            );
          }
          assert.equal(await follow.exited, 0, follow.stderr);
          if (level === 'masked') {
            assert.ok(!follow.stdout.includes(MASKED_VALUE) && follow.stdout.startsWith('using '), follow.stdout);
            assert.ok(follow.stdout.endsWith(`\n${expected}`), follow.stdout);
          } else assert.equal(follow.stdout, expected, level);
          await succeeded(server, id);
        } finally {
          await follow.stop('SIGKILL');
        }
      }),
    );
  });

  it('a token printed in two halves with a pause between them is stored redacted, and its first half is never readable', async () => {
    const token = 'ghp_Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3HiJ';
    assert.equal(token.length, 40);
    const [first, second] = [token.slice(0, 20), token.slice(20)];
    const id = await detach(server, 'progress-secrets', `printf 'token: ${first}'; sleep ${STEP_SECONDS}; printf '${second} done\\n'`);
    const follow = server.spawnCli(['task', 'logs', id, '--follow']);
    try {
      // What comes before the token streams; the token's start is held while the task sleeps.
      const seen = await seenWhen(follow, 'token: ');
      await new Promise((r) => setTimeout(r, (STEP_SECONDS * 1000) / 2));
      assert.ok(!follow.stdout.includes('ghp_'), `the first half was readable: ${JSON.stringify(follow.stdout)}`);
      assert.ok(!seen.includes('done'));
      assert.equal(await follow.exited, 0, follow.stderr);
      assert.equal(follow.stdout, 'token: [REDACTED:github-token] done\n');
    } finally {
      await follow.stop('SIGKILL');
    }
    await succeeded(server, id);
    const stored = await server.cli(['task', 'logs', id]);
    assert.equal(stored.stdout, 'token: [REDACTED:github-token] done\n');
    assert.ok(!stored.stdout.includes(first) && !stored.stdout.includes(second.slice(0, 10)));
  });
});
