import { AuditPage } from '../admin/audit';

export default function Audit() {
  return <AuditPage />;
}
