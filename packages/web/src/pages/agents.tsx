import { Placeholder } from '../components/placeholder';

export default function AgentsPage() {
  return <Placeholder title="Agents" what="Agents online and offline, their versions and targets; revoke; join tokens." />;
}
