/** Where the administration pages live in the UI (the router's paths for them). */
export const targetHref = (name: string): string => `/targets/${encodeURIComponent(name)}`;
export const secretsHref = (name: string): string => `/targets/${encodeURIComponent(name)}/secrets`;
