/** Where the administration pages live in the UI (their paths in ../routes.ts). */
export const targetHref = (name: string): string => `/ui/targets/${encodeURIComponent(name)}`;
export const secretsHref = (name: string): string => `/ui/targets/${encodeURIComponent(name)}/secrets`;
export const adminHref = (section: string): string => `/ui/admin/${section}`;
