/**
 * The first-load budget: at most 250 KB of gzip JavaScript for a person's first page. Builds
 * nothing: reads the build's manifest (packages/web/dist/.vite/manifest.json) and the gzip
 * copies the build made beside each file. Counted: the entry (what index.html loads) with
 * everything it imports, plus the chunks of the pages a first visit lands on (sign-in, the
 * invitation, the task list, a task) with theirs. The Run page's editor (CodeMirror) is not in
 * it: it loads when that page opens. Prints the figures.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../../helpers/ferry.js';

const DIST = join(ROOT, 'packages/web/dist');
const BUDGET_BYTES = 250 * 1000;
const LANDING_PAGES = ['src/pages/sign-in.tsx', 'src/pages/invite.tsx', 'src/pages/tasks.tsx', 'src/pages/task.tsx'];

interface Chunk {
  file: string;
  imports?: string[];
  isEntry?: boolean;
}

describe('web UI: first-load budget', () => {
  it('the first load is at most 250 KB of gzip JavaScript (built by `npm run build`)', () => {
    const manifestFile = join(DIST, '.vite/manifest.json');
    assert.ok(existsSync(manifestFile), 'build the web UI first: npm run build');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, Chunk>;
    const entry = Object.entries(manifest).find(([, c]) => c.isEntry)?.[0];
    assert.ok(entry, 'an entry chunk');
    const files = new Set<string>();
    const add = (key: string): void => {
      const chunk = manifest[key];
      assert.ok(chunk, `manifest has ${key}`);
      if (files.has(chunk.file)) return;
      files.add(chunk.file);
      for (const dep of chunk.imports ?? []) add(dep);
    };
    add(entry);
    const entryOnly = new Set(files);
    for (const page of LANDING_PAGES) add(page);

    const gz = (file: string): number => statSync(join(DIST, `${file}.gz`)).size;
    const sum = (set: Set<string>): number => [...set].filter((f) => f.endsWith('.js')).reduce((n, f) => n + gz(f), 0);
    const total = sum(files);
    const run = manifest['src/pages/run.tsx'];
    assert.ok(run && !files.has(run.file), 'the Run page (CodeMirror) is not in the first load');
    console.log(
      `web UI first load: ${(total / 1000).toFixed(1)} KB gzip JavaScript (entry ${(sum(entryOnly) / 1000).toFixed(1)} KB; ` +
        `landing pages add ${((total - sum(entryOnly)) / 1000).toFixed(1)} KB; the Run page loads ${(gz(run.file) / 1000).toFixed(1)} KB more when opened); budget ${BUDGET_BYTES / 1000} KB`,
    );
    assert.ok(total <= BUDGET_BYTES, `${total} bytes of gzip JavaScript on first load, over the budget of ${BUDGET_BYTES}`);
  });
});
