/**
 * Reading a runbook source with the system's `git`: a bare mirror per source under the data
 * folder, fetched on each sync; files are read from the fetched commit (no work tree). Only
 * https, ssh and local repositories are allowed (no `ext::` helpers, which run commands), git
 * never prompts, and each call has a time limit. Credentials for private repositories are the
 * server user's own (a credential helper, ~/.ssh, GIT_SSH_COMMAND): Ferry stores none.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const GIT_TIMEOUT_MS = 120_000;
const MAX_FILES = 500;
const MAX_FILE_BYTES = 1024 * 1024;

function git(args: readonly string[], cwd?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-c', 'protocol.ext.allow=never', ...args],
      {
        cwd,
        timeout: GIT_TIMEOUT_MS,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'buffer',
        env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ALLOW_PROTOCOL: 'file:https:ssh', GIT_CONFIG_NOSYSTEM: '1' },
      },
      (err, stdout, stderr) => {
        if (err) {
          const why = stderr.toString('utf8').trim().split('\n').filter(Boolean).at(-1) ?? err.message;
          reject(new Error(why));
        } else resolve(stdout);
      },
    );
  });
}

export interface FetchedFiles {
  commit: string;
  files: { path: string; text: string }[];
}

/** Fetches `ref` of `url` into the mirror `dir` and reads the files under `path` at that commit. */
export async function fetchFiles(dir: string, url: string, ref: string, path: string): Promise<FetchedFiles> {
  if (!existsSync(dir)) {
    mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
    await git(['init', '--quiet', '--bare', dir]);
  }
  await git(['fetch', '--quiet', '--force', '--no-tags', '--end-of-options', url, ref], dir);
  const commit = (await git(['rev-parse', '--verify', '--end-of-options', 'FETCH_HEAD^{commit}'], dir)).toString('utf8').trim();
  const listing = await git(['ls-tree', '-r', '-z', '--long', commit, '--', ...(path ? [path] : [])], dir);
  const files: FetchedFiles['files'] = [];
  for (const entry of listing.toString('utf8').split('\0').filter(Boolean).slice(0, MAX_FILES)) {
    // "<mode> blob <sha> <size>\t<path>"
    const m = /^\d+ blob ([0-9a-f]+)\s+(\d+)\t(.*)$/s.exec(entry);
    if (!m || Number(m[2]) > MAX_FILE_BYTES) continue;
    files.push({ path: m[3]!, text: (await git(['cat-file', 'blob', m[1]!], dir)).toString('utf8') });
  }
  return { commit, files };
}
