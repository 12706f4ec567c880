/**
 * The Containerfiles, checked as far as this machine allows: no image builder here can reach a
 * container registry for the base images (docs/deploy.md says so), so the images are not built
 * in the tests. What the builds do is tested elsewhere: the npm pack + npm install -g steps of
 * the server image and the self-contained agent of the agent image (install.packed-and-standalone).
 * Here: multi-stage, base images pinned to exact releases, Node's major the one the tests run,
 * every COPY source in the build context, stages named before use, the server not root, the
 * entry points where the build stage puts them.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/ferry.js';

interface Instruction {
  op: string;
  args: string;
}

/** Instructions of a Containerfile: comments dropped, `\` continuations joined. */
function parse(file: string): Instruction[] {
  const text = readFileSync(join(ROOT, 'deploy/container', file), 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [op = '', ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

const ignored = readFileSync(join(ROOT, '.containerignore'), 'utf8')
  .split('\n')
  .filter((l) => l && !l.startsWith('#'));

for (const file of ['Containerfile.server', 'Containerfile.agent']) {
  describe(file, () => {
    const ins = parse(file);
    const froms = ins.filter((i) => i.op === 'FROM');
    const lastStage = ins.slice(ins.lastIndexOf(froms.at(-1) as Instruction));

    it('is multi-stage, with base images pinned to exact releases and the Node major the tests use', () => {
      assert.ok(froms.length >= 2);
      for (const f of froms) {
        const image = f.args.split(/\s+/)[0] ?? '';
        assert.match(image, /^docker\.io\/library\/[a-z]+:\d+\.\d+(\.\d+)?(-[a-z]+)*$/, `${image} is pinned to a release`);
        const node = /node:(\d+)\./.exec(image);
        if (node) assert.equal(`v${node[1]}`, process.version.split('.')[0]);
      }
    });

    it('copies only what the build context has, from stages defined before', () => {
      const stages = new Set<string>();
      for (const i of ins) {
        if (i.op === 'FROM') {
          const as = /\sAS\s+(\S+)/i.exec(i.args);
          if (as?.[1]) stages.add(as[1]);
        }
        if (i.op !== 'COPY') continue;
        const from = /--from=(\S+)/.exec(i.args)?.[1];
        const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
        if (from) {
          assert.ok(stages.has(from), `COPY --from=${from}: no such stage yet`);
          continue;
        }
        for (const src of parts.slice(0, -1)) {
          assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: not in the repository`);
          assert.ok(!ignored.includes(src), `COPY ${src}: excluded by .containerignore`);
        }
      }
      assert.ok(ignored.includes('node_modules') && ignored.includes('**/dist'), 'the context leaves out installed and built files');
    });

    it('starts the command the build stage installed', () => {
      const entry = JSON.parse(lastStage.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]') as string[];
      const build = ins
        .slice(0, ins.indexOf(froms.at(-1) as Instruction))
        .map((i) => i.args)
        .join('\n');
      if (file.endsWith('server')) {
        assert.deepEqual(entry, ['/opt/ferry/bin/ferry', 'server']);
        assert.match(build, /npm install -g --prefix \/opt\/ferry .*\/packs\/\*\.tgz/);
        assert.match(build, /\/opt\/ferry\/bin\/ferry --version/);
      } else {
        assert.deepEqual(entry.slice(0, 2), ['/opt/ferry-agent/ferry-agent', 'start']);
        assert.match(build, /node scripts\/build-agent-tarball\.mjs \/release/);
        assert.match(build, /\/opt\/ferry-agent\/ferry-agent --version/);
      }
    });

    it(file.endsWith('server') ? 'runs as an unprivileged user' : 'runs as root, for the sandbox, with bubblewrap installed', () => {
      const user = lastStage.find((i) => i.op === 'USER')?.args;
      if (file.endsWith('server')) assert.ok(user && !/^(0|root)(:|$)/.test(user), `USER ${user}`);
      else {
        assert.equal(user, undefined);
        assert.match(lastStage.map((i) => i.args).join('\n'), /apt-get install .*bubblewrap util-linux perl-base/);
      }
    });
  });
}
