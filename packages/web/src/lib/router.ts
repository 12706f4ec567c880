/**
 * A small client-side router: pages are registered in ../routes.ts with a path pattern
 * (`/ui/tasks/:id`); `navigate()` changes the address without a reload; `useLocation()`
 * re-renders a component when the address changes (links, back and forward).
 */
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set<() => void>();

function changed(): void {
  for (const listener of listeners) listener();
}

window.addEventListener('popstate', changed);

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  changed();
  window.scrollTo(0, 0);
}

/** The current address; the component re-renders when it changes. */
export function useLocation(): URL {
  const [, setTick] = useState(0);
  useEffect(() => {
    const listener = (): void => setTick((n) => n + 1);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return new URL(location.href);
}

/** The parameters of `path` if it matches `pattern` (`/ui/tasks/:id`), else undefined. */
export function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = path.replace(/\/+$/, '').split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of want.entries()) {
    const value = got[i] ?? '';
    if (part.startsWith(':')) params[part.slice(1)] = decodeURIComponent(value);
    else if (part !== value) return undefined;
  }
  return params;
}

/** Follows a link inside the app without a reload (a modified click opens a tab as usual). */
export function onLinkClick(e: MouseEvent): void {
  const a = e.currentTarget as HTMLAnchorElement;
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target) return;
  if (a.origin !== location.origin) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
}
