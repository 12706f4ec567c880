import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import { registerAgentApiRoutes } from './agent-api.js';
import { registerAgentRoutes } from './agents.js';
import { registerAuditRoutes } from './audit.js';
import { registerGroupRoutes } from './groups.js';
import { registerOrgRoutes } from './orgs.js';
import { registerPeopleRoutes } from './people.js';
import { registerSsoRoutes } from './sso.js';
import { registerPublicRoutes } from './public.js';
import { registerReviewRoutes } from './reviews.js';
import { registerRunbookRoutes } from './runbooks.js';
import { registerSecretRoutes } from './secrets.js';
import { registerTargetRoutes } from './targets.js';
import { registerTaskRoutes } from './tasks.js';
import { registerTokenRoutes } from './tokens.js';
import { registerWebhookRoutes } from './webhooks.js';
import { registerWebRoutes } from './web.js';

/** Every route of the protocol's table; each module registers its part through http/route.ts. */
export function registerRoutes(app: FerryApp, ctx: ServerContext): void {
  registerPublicRoutes(app, ctx);
  registerTargetRoutes(app, ctx);
  registerTaskRoutes(app, ctx);
  registerReviewRoutes(app, ctx);
  registerAgentRoutes(app, ctx);
  registerAgentApiRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  registerSecretRoutes(app, ctx);
  registerOrgRoutes(app, ctx);
  registerTokenRoutes(app, ctx);
  registerGroupRoutes(app, ctx);
  registerWebhookRoutes(app, ctx);
  registerRunbookRoutes(app, ctx);
  registerPeopleRoutes(app, ctx);
  registerSsoRoutes(app, ctx);
  registerWebRoutes(app, ctx);
}
