import { TargetsPage } from '../admin/targets';

export default function Targets() {
  return <TargetsPage />;
}
