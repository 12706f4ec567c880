import { AdministrationPage } from '../admin/administration';
import type { PageProps } from '../routes';

export default function Admin({ params }: PageProps) {
  return <AdministrationPage section={params.section} />;
}
