/**
 * One server per SQLite data folder. Two servers on one folder would each run the lease sweeper,
 * the embedded agent and the dispatch hub over the same database, and the second one would
 * regenerate nothing but confuse everything; so the folder is locked while a server runs.
 *
 * The lock is SQLite's own file lock (fcntl) on a small `server.lock` database held in
 * `locking_mode=EXCLUSIVE`: the operating system releases it when the process dies, however it
 * dies, so a killed server's folder restarts cleanly. The holder's pid is written beside it
 * (`server.pid`) only to name it in the message; the pid file decides nothing.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

class DataFolderLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number | undefined,
  ) {
    super(
      `The data folder ${dataDir} is in use by another ferry server (${pid === undefined ? 'pid unknown' : `pid ${pid}`}). ` +
        'Stop that server first, or give this one another --data-dir.',
    );
    this.name = 'DataFolderLockedError';
  }
}

export interface DataFolderLock {
  release(): void;
}

function holderPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the folder's lock at once or throws DataFolderLockedError naming the holder. */
export function lockDataFolder(dataDir: string): DataFolderLock {
  const pidFile = join(dataDir, 'server.pid');
  // timeout 0: a held lock is an answer, not something to wait for.
  const db = new Database(join(dataDir, 'server.lock'), { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the exclusive lock; in EXCLUSIVE mode it is kept until close.
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER); DELETE FROM holder;');
    db.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid);
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) throw new DataFolderLockedError(dataDir, holderPid(pidFile));
    throw err;
  }
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      rmSync(pidFile, { force: true });
      db.close();
    },
  };
}
