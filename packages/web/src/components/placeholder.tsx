/** A page that is registered but not built yet: says so, so the navigation never leads nowhere. */
export function Placeholder({ title, what }: { title: string; what: string }) {
  return (
    <>
      <h1>{title}</h1>
      <p>{what}</p>
      <p>Until this page is built, the CLI does it: see `ferry --help`.</p>
    </>
  );
}
