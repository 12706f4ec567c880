import { TargetPage } from '../admin/targets';
import type { PageProps } from '../routes';

export default function Target({ params }: PageProps) {
  return <TargetPage name={params.name ?? ''} />;
}
