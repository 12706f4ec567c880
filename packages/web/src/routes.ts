/**
 * Every page of the UI: its address, its title, and how to load it. Pages load on demand (each
 * is its own chunk), so the first load carries only the shell; the Run page's editor
 * (CodeMirror) is fetched when that page opens. To add a page: see ../README.md.
 */
import type { ComponentType } from 'preact';

export interface PageProps {
  /** The path's `:name` parameters. */
  params: Record<string, string>;
  /** The query string, parsed. */
  query: URLSearchParams;
}

export interface PageDef {
  /** `/ui/...`; `:name` segments become `params.name`. */
  path: string;
  title: string;
  load: () => Promise<{ default: ComponentType<PageProps> }>;
  /** Shown without a session (sign-in, accepting an invitation). */
  public?: boolean;
}

export const pages: PageDef[] = [
  { path: '/ui/sign-in', title: 'Sign in', public: true, load: () => import('./pages/sign-in') },
  { path: '/ui/invite', title: 'Join Ferry', public: true, load: () => import('./pages/invite') },
  { path: '/ui/tasks', title: 'Tasks', load: () => import('./pages/tasks') },
  { path: '/ui/tasks/:id', title: 'Task', load: () => import('./pages/task') },
  { path: '/ui/run', title: 'Run a task', load: () => import('./pages/run') },
  // The pages below are web-admin's (their parts are in src/admin/).
  { path: '/ui/targets', title: 'Targets', load: () => import('./pages/targets') },
  { path: '/ui/targets/:name', title: 'Target', load: () => import('./pages/target') },
  { path: '/ui/targets/:name/secrets', title: 'Secrets', load: () => import('./pages/secrets') },
  { path: '/ui/agents', title: 'Agents', load: () => import('./pages/agents') },
  { path: '/ui/audit', title: 'Audit', load: () => import('./pages/audit') },
  { path: '/ui/admin', title: 'Administration', load: () => import('./pages/admin') },
  { path: '/ui/admin/:section', title: 'Administration', load: () => import('./pages/admin') },
];

/** The navigation bar, in order. `match`: the paths under an entry that highlight it. */
export const nav: { label: string; href: string; match: string }[] = [
  { label: 'Tasks', href: '/ui/tasks', match: '/ui/tasks' },
  { label: 'Run', href: '/ui/run', match: '/ui/run' },
  { label: 'Targets', href: '/ui/targets', match: '/ui/targets' },
  { label: 'Agents', href: '/ui/agents', match: '/ui/agents' },
  { label: 'Audit', href: '/ui/audit', match: '/ui/audit' },
  { label: 'Admin', href: '/ui/admin', match: '/ui/admin' },
];
