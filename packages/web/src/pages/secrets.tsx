import { SecretsPage } from '../admin/secrets';
import type { PageProps } from '../routes';

export default function Secrets({ params }: PageProps) {
  return <SecretsPage name={params.name ?? ''} />;
}
