import { readFileSync } from 'node:fs';
import { UsageError } from './errors.js';

const WHY: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a folder, not a file',
};

/** A file the user named with `flag`, or a one-line UsageError that says which flag and why. */
export function readUserFile(flag: string, file: string | 0): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw new UsageError(`Cannot read ${flag} ${file === 0 ? '-' : file}: ${WHY[code] ?? (err as Error).message}.`);
  }
}
