/**
 * The frame of every page: a skip link, the navigation (Tasks, Run, Targets, Agents, Audit,
 * Admin), who is signed in with a sign-out button, and the page in <main>. Public pages (sign-in,
 * invitation) get the frame without navigation.
 */
import type { ComponentChildren } from 'preact';
import { errorText } from '../lib/api';
import { onLinkClick, useLocation } from '../lib/router';
import { signOut, useSession } from '../lib/session';
import { nav } from '../routes';

export function Layout({ children, bare = false }: { children: ComponentChildren; bare?: boolean | undefined }) {
  const url = useLocation();
  const session = useSession();
  const out = (): void => {
    signOut().catch((err: unknown) => window.alert(errorText(err)));
  };
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/ui/tasks" onClick={onLinkClick}>
          Ferry
        </a>
        {!bare && session && (
          <>
            <nav aria-label="Main">
              <ul>
                {nav.map((item) => {
                  const here = url.pathname === item.match || url.pathname.startsWith(`${item.match}/`);
                  return (
                    <li key={item.href}>
                      <a href={item.href} onClick={onLinkClick} aria-current={here ? 'page' : undefined}>
                        {item.label}
                      </a>
                    </li>
                  );
                })}
              </ul>
            </nav>
            <div class="who">
              <span title={`${session.role} of ${session.org}`}>{session.email}</span>
              <button type="button" class="link" onClick={out}>
                Sign out
              </button>
            </div>
          </>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}
