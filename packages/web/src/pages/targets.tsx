import { Placeholder } from '../components/placeholder';

export default function TargetsPage() {
  return <Placeholder title="Targets" what="Create and edit targets, their settings, review policy, grants and secrets." />;
}
