/** The storage of runbook sources and the runbooks of their last good sync (sqlite/runbooks.ts). */
import type { RunbookParam } from '@ferry/protocol';

export interface RunbookSourceRow {
  id: string;
  orgId: string;
  name: string;
  git: string;
  ref: string;
  path: string;
  commit: string | null;
  syncedAt: number | null;
  lastError: string | null;
  createdBy: string;
  createdAt: number;
}

/** What a runbook's front matter declares. */
export interface RunbookMeta {
  description: string | null;
  targetType: string;
  defaultTarget: string | null;
  params: RunbookParam[];
}

export interface RunbookRow extends RunbookMeta {
  orgId: string;
  name: string;
  sourceId: string;
  sourceName: string;
  file: string;
  commit: string;
  script: string;
}

export interface RunbookStore {
  addSource(row: RunbookSourceRow): Promise<'ok' | 'exists'>;
  listSources(orgId?: string): Promise<RunbookSourceRow[]>;
  getSource(orgId: string, name: string): Promise<RunbookSourceRow | undefined>;
  /** A good sync: the source's runbooks become `runbooks`, at `commit`, in one transaction. */
  replaceRunbooks(sourceId: string, commit: string, now: number, runbooks: readonly RunbookRow[], warning: string | null): Promise<void>;
  /** A failed sync: the runbooks stay as they were; the error is kept to say so. */
  syncFailed(sourceId: string, error: string): Promise<void>;
  countRunbooks(sourceId: string): Promise<number>;
  listRunbooks(orgId: string): Promise<RunbookRow[]>;
  getRunbook(orgId: string, name: string): Promise<RunbookRow | undefined>;
}
