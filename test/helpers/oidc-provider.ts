/**
 * A real, certified OpenID provider (`oidc-provider`) on loopback for the single sign-on tests,
 * with test users. Login and consent are finished at once for the user `nextUser` names (no
 * pages), so a browser (or a plain HTTP client following redirects) goes straight back to
 * Ferry's callback. Used by test/e2e/people.sso.test.ts (the CLI's flows) and
 * test/e2e/web/sso.test.ts (the web UI's).
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import Provider from 'oidc-provider';

const USERS: Record<string, { email: string; groups: string[] }> = {
  ada: { email: 'ada@example.com', groups: ['deployers', 'not-a-ferry-group'] },
  mallory: { email: 'mallory@evil.test', groups: [] },
};
export const CLIENT_SECRET = 'a-client-secret-for-the-test-provider';

/** The test identity provider: who signs in next, and whether codes expire at once. */
export interface TestProvider {
  issuer: string;
  nextUser: string;
  shortCodes: boolean;
  close(): Promise<void>;
}

export async function startProvider(ferryUrl: string): Promise<TestProvider> {
  /** The provider's handler, once the provider exists (it needs the port for its issuer). */
  const route: { handler?: RequestListener } = {};
  const http: Server = createServer((req, res) => route.handler?.(req, res));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  const state: TestProvider = { issuer, nextUser: 'ada', shortCodes: false, close: () => new Promise((resolve) => http.close(() => resolve())) };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'ferry',
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${ferryUrl}/v1/sso/callback`],
        grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
        response_types: ['code'],
      },
    ],
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, email: USERS[id]!.email, email_verified: true, groups: USERS[id]!.groups }),
    }),
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: [], groups: ['groups'] },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false }, deviceFlow: { enabled: true } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: { AuthorizationCode: () => (state.shortCodes ? 1 : 60) },
    cookies: { keys: ['test-cookie-key'] },
  });
  const callback = provider.callback();
  route.handler = (req, res) => {
    if (!req.url?.startsWith('/interaction/')) return void callback(req, res);
    // The user "logs in and consents": the test says who.
    void (async () => {
      const details = await provider.interactionDetails(req, res);
      const accountId = state.nextUser;
      const grant = new provider.Grant({ accountId, clientId: String(details.params.client_id) });
      grant.addOIDCScope(String(details.params.scope));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
    })().catch((err: unknown) => res.writeHead(500).end(String(err)));
  };
  return state;
}
