import { Placeholder } from '../components/placeholder';

export default function AuditPage() {
  return <Placeholder title="Audit" what="The audit trail, filterable, and verifying its hash chain." />;
}
