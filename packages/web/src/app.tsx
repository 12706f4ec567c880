/**
 * The shell: finds the page for the address, makes sure there is a session for pages that need
 * one (else on to sign-in, and back afterwards), loads the page's chunk, and lays it out.
 */
import type { ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Layout } from './components/layout';
import { errorText } from './lib/api';
import { matchPath, navigate, useLocation } from './lib/router';
import { loadSession, useSession } from './lib/session';
import { pages, type PageDef, type PageProps } from './routes';

function findPage(path: string): { page: PageDef; params: Record<string, string> } | undefined {
  for (const page of pages) {
    const params = matchPath(page.path, path);
    if (params) return { page, params };
  }
  return undefined;
}

const loaded = new Map<PageDef, ComponentType<PageProps>>();

/** The page's component, once its chunk is loaded. */
function usePageComponent(page: PageDef | undefined): { Component?: ComponentType<PageProps>; error?: string } {
  const [, setTick] = useState(0);
  const [error, setError] = useState<string>();
  useEffect(() => {
    if (!page || loaded.has(page)) return;
    page
      .load()
      .then((m) => {
        loaded.set(page, m.default);
        setTick((n) => n + 1);
      })
      .catch((err: unknown) => setError(`This page could not be loaded (${errorText(err)}); reload to try again.`));
  }, [page]);
  return { Component: page ? loaded.get(page) : undefined, error };
}

export function App() {
  const url = useLocation();
  const session = useSession();
  const path = url.pathname === '/' || url.pathname === '/ui' ? '/ui/tasks' : url.pathname;
  const found = findPage(path);
  const { Component, error } = usePageComponent(found?.page);

  useEffect(() => {
    loadSession().catch(() => undefined);
  }, []);
  useEffect(() => {
    document.title = found ? `${found.page.title} · Ferry` : 'Not found · Ferry';
  }, [found?.page]);
  useEffect(() => {
    if (session === null && found && !found.page.public) {
      navigate(`/ui/sign-in?next=${encodeURIComponent(url.pathname + url.search)}`, { replace: true });
    }
  }, [session, found?.page]);

  if (!found) {
    return (
      <Layout>
        <h1>Not found</h1>
        <p>There is no page at {url.pathname}.</p>
      </Layout>
    );
  }
  const ready = found.page.public || session;
  return (
    <Layout bare={found.page.public}>
      {error ? (
        <p role="alert">{error}</p>
      ) : ready && Component ? (
        <Component params={found.params} query={url.searchParams} />
      ) : (
        <p aria-live="polite">Loading…</p>
      )}
    </Layout>
  );
}
