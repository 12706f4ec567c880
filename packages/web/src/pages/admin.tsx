import { Placeholder } from '../components/placeholder';

export default function AdministrationPage() {
  return <Placeholder title="Administration" what="People, groups, tokens, webhooks and runbook sources." />;
}
