/**
 * Administration: people, groups, tokens, webhooks and runbook sources, one section at a time
 * (`/admin/<section>`), with a list of the sections as links (keyboard- and reader-friendly).
 */
import type { JSX } from 'preact';
import { onLinkClick } from '../lib/router';
import { RunbookSourcesSection, TokensSection, WebhooksSection } from './integrations';
import { useIsAdmin } from './api';
import { adminHref } from './paths';
import { GroupsSection, PeopleSection } from './people';
import { AdminOnly } from './ui';

const ADMIN_SECTIONS = [
  { id: 'people', label: 'People', render: () => <PeopleSection /> },
  { id: 'groups', label: 'Groups', render: () => <GroupsSection /> },
  { id: 'tokens', label: 'Tokens', render: () => <TokensSection /> },
  { id: 'webhooks', label: 'Webhooks', render: () => <WebhooksSection /> },
  { id: 'runbook-sources', label: 'Runbook sources', render: () => <RunbookSourcesSection /> },
] as const;

export function AdministrationPage({ section }: { section?: string }): JSX.Element {
  // Everyone manages their own tokens (and those of the service accounts they made); the rest is the admins'.
  const admin = useIsAdmin();
  const sections = admin ? ADMIN_SECTIONS : ADMIN_SECTIONS.filter((s) => s.id === 'tokens');
  const current = sections.find((s) => s.id === section) ?? sections[0] ?? ADMIN_SECTIONS[2];
  return (
    <section class="admin-page" aria-labelledby="administration-title">
      <h1 id="administration-title">Administration</h1>
      <nav aria-label="Administration sections" class="admin-tabs">
        <ul>
          {sections.map((s) => (
            <li key={s.id}>
              <a href={adminHref(s.id)} onClick={onLinkClick} aria-current={s.id === current.id ? 'page' : undefined}>
                {s.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      {admin ? null : <AdminOnly what="Managing people, groups, webhooks and runbook sources" />}
      {current.render()}
    </section>
  );
}
