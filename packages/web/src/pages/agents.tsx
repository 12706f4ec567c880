import { AgentsPage } from '../admin/agents';

export default function Agents() {
  return <AgentsPage />;
}
