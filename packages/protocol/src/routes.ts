/**
 * The route table: every API endpoint once, with its method, path, who may call it and the
 * schemas of what goes in and comes out. The server registers its handlers from this table and
 * the client calls through it, so a path, a schema or a header name is written in one place.
 *
 * Path parameters are `:name` segments. Bodies are JSON (a schema) or output frames; answers
 * are JSON (a schema), empty (204), plain text, or output frames with the headers below.
 */
import { z } from 'zod';
import {
  AgentInfo,
  AuditEntry,
  CreateJoinTokenRequest,
  CreateTargetRequest,
  CreateTaskRequest,
  FinishTaskRequest,
  HeartbeatRequest,
  HeartbeatResponse,
  JoinTokenCreated,
  ListTasksQuery,
  PruneAgentsRequest,
  PrunedAgents,
  PollRequest,
  PollResponse,
  ReadOutputQuery,
  RegisterAgentRequest,
  RegisterAgentResponse,
  Target,
  TargetName,
  Task,
  UpdateTargetRequest,
  UploadOutputQuery,
  UploadOutputResponse,
} from './schemas.js';
import {
  HandOverKeyRequest,
  KeyReceivedRequest,
  PublishKeyRequest,
  RevokeAgentQuery,
  RotateKeyRequest,
  RotateTargetKeyQuery,
  SecretInfo,
  SetSecretRequest,
  TargetKey,
} from './secrets.js';
import {
  CreateGroupRequest,
  CreateOrgRequest,
  CreateTokenRequest,
  GrantInfo,
  GrantRequest,
  GroupInfo,
  OrgCreated,
  OrgInfo,
  TokenCreated,
  TokenInfo,
} from './teams.js';
import { ApproveTaskRequest, RejectTaskRequest } from './reviews.js';
import { AddRunbookSourceRequest, RunRunbookRequest, RunbookInfo, RunbookSourceInfo } from './runbooks.js';
import { CreateWebhookRequest, WebhookCreated, WebhookDeliveriesQuery, WebhookDelivery, WebhookInfo } from './webhooks.js';
import {
  AcceptInvitationRequest,
  InvitationCreated,
  InvitationInfo,
  InvitationRequest,
  InviteUserRequest,
  SetSsoRequest,
  SetUserRoleRequest,
  SignInRequest,
  SsoCallbackQuery,
  SsoDevicePollRequest,
  SsoDeviceStartRequest,
  SsoDeviceStarted,
  SsoExchangeRequest,
  SsoInfo,
  SsoStartRequest,
  SsoStarted,
  SignedIn,
  UserInfo,
  UserList,
} from './people.js';
import { WebLinkSignInRequest, WebSession, WebSsoStartRequest, WebSsoStarted } from './web.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type RouteAuth = 'none' | 'user' | 'agent';

export interface RouteDef {
  readonly method: HttpMethod;
  readonly path: string;
  readonly auth: RouteAuth;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType | 'frames';
  readonly response: z.ZodType | 'empty' | 'text' | 'frames';
  /** The HTTP status of a successful answer (default 200; 204 for empty answers). */
  readonly status?: number;
  /** The media type of a text answer (default text/plain), for the OpenAPI document. */
  readonly textType?: string;
}

function route<const R extends RouteDef>(def: R): R {
  return def;
}

/** Headers of an output read (`readOutput`): where to continue, the task's status, and whether all was read. */
export const OutputHeaders = {
  nextOffset: 'ferry-next-offset',
  taskStatus: 'ferry-task-status',
  complete: 'ferry-output-complete',
} as const;

/**
 * Header of an output upload (`uploadOutput`): the digest (OutputDigest, hex) of the task's raw
 * output from its start to the end of this chunk. The server checks it before storing anything.
 */
export const OUTPUT_DIGEST_HEADER = 'ferry-output-digest';

export const Health = z.object({ ok: z.boolean(), version: z.string(), api: z.string() });
export const TaskWithAgents = Task.extend({ agentsOnline: z.number().int() });
export type TaskWithAgents = z.infer<typeof TaskWithAgents>;
export const AuditVerification = z.object({ ok: z.boolean(), entries: z.number().int(), brokenAt: z.number().int().nullable() });
/**
 * `GET /v1/audit`: newest first, narrowed by the filters given (all of them must hold). Paging:
 * an answer that may have more carries `nextBefore`; ask again with `before` set to it.
 */
export const AuditQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(10000).default(100),
    /** Entries whose actor contains this text (case-insensitive): `ada@`, `agent:`, `server`. */
    actor: z.string().min(1).max(320).optional(),
    /** Entries whose action starts with this: `secret.` or `task.create`. */
    action: z
      .string()
      .regex(/^[a-z0-9._-]{1,64}$/, 'an action or the start of one, such as secret. or task.create')
      .optional(),
    /** Entries about this target: the target itself, its secrets, grants and keys, and its tasks. */
    target: TargetName.optional(),
    /** Entries at or after this time (ISO 8601). */
    since: z.iso.datetime({ offset: true }).optional(),
    /** Entries before this time (ISO 8601). */
    until: z.iso.datetime({ offset: true }).optional(),
    /** The cursor: entries with a sequence number below this (an answer's `nextBefore`). */
    before: z.coerce.number().int().min(1).optional(),
  })
  .strict();
export const AuditPage = z.object({
  entries: z.array(AuditEntry),
  /** Where the next page starts (`before`); null: this was the last page (servers before paging: absent). */
  nextBefore: z.number().int().nullable().optional(),
});
export const KeyPublished = z.object({ keyId: z.string() });
/** The OpenAPI document (openapi.ts) as the route table sees it: its top level. */
export const OpenApiDocument = z.looseObject({
  openapi: z.string(),
  info: z.looseObject({ title: z.string(), version: z.string() }),
  paths: z.record(z.string(), z.unknown()),
});

export const Routes = {
  // ---- public ----
  health: route({ method: 'GET', path: '/v1/health', auth: 'none', response: Health }),
  caCertificate: route({ method: 'GET', path: '/v1/ca.pem', auth: 'none', response: 'text', textType: 'application/x-pem-file' }),
  openApi: route({ method: 'GET', path: '/v1/openapi.json', auth: 'none', response: OpenApiDocument }),

  // ---- targets and secrets ----
  createTarget: route({ method: 'POST', path: '/v1/targets', auth: 'user', body: CreateTargetRequest, response: Target, status: 201 }),
  listTargets: route({ method: 'GET', path: '/v1/targets', auth: 'user', response: z.object({ targets: z.array(Target) }) }),
  getTarget: route({ method: 'GET', path: '/v1/targets/:name', auth: 'user', response: Target }),
  deleteTarget: route({ method: 'DELETE', path: '/v1/targets/:name', auth: 'user', response: 'empty' }),
  updateTarget: route({ method: 'PATCH', path: '/v1/targets/:name', auth: 'user', body: UpdateTargetRequest, response: Target }),
  getTargetKey: route({ method: 'GET', path: '/v1/targets/:name/key', auth: 'user', response: TargetKey }),
  setSecret: route({ method: 'PUT', path: '/v1/targets/:name/secrets/:secret', auth: 'user', body: SetSecretRequest, response: SecretInfo }),
  listSecrets: route({ method: 'GET', path: '/v1/targets/:name/secrets', auth: 'user', response: z.object({ secrets: z.array(SecretInfo) }) }),
  deleteSecret: route({ method: 'DELETE', path: '/v1/targets/:name/secrets/:secret', auth: 'user', response: 'empty' }),
  /** Asks a key-holding agent of the target to make a new key and re-seal every value; answers at once (poll `getTarget` for `keyRotationPending`). */
  rotateTargetKey: route({ method: 'POST', path: '/v1/targets/:name/key/rotate', auth: 'user', query: RotateTargetKeyQuery, response: Target, status: 202 }),

  // ---- tasks ----
  createTask: route({ method: 'POST', path: '/v1/tasks', auth: 'user', body: CreateTaskRequest, response: TaskWithAgents, status: 201 }),
  listTasks: route({ method: 'GET', path: '/v1/tasks', auth: 'user', query: ListTasksQuery, response: z.object({ tasks: z.array(Task) }) }),
  getTask: route({ method: 'GET', path: '/v1/tasks/:id', auth: 'user', response: TaskWithAgents }),
  getTaskScript: route({ method: 'GET', path: '/v1/tasks/:id/script', auth: 'user', response: 'text' }),
  cancelTask: route({ method: 'POST', path: '/v1/tasks/:id/cancel', auth: 'user', response: Task }),
  readOutput: route({ method: 'GET', path: '/v1/tasks/:id/output', auth: 'user', query: ReadOutputQuery, response: 'frames' }),

  // ---- reviews ----
  approveTask: route({ method: 'POST', path: '/v1/tasks/:id/approve', auth: 'user', body: ApproveTaskRequest, response: Task }),
  rejectTask: route({ method: 'POST', path: '/v1/tasks/:id/reject', auth: 'user', body: RejectTaskRequest, response: Task }),
  /** Tasks waiting for a review the caller may give (and has not given yet). */
  listReviews: route({ method: 'GET', path: '/v1/reviews', auth: 'user', response: z.object({ tasks: z.array(Task) }) }),

  // ---- runbooks ----
  addRunbookSource: route({
    method: 'POST',
    path: '/v1/runbook-sources',
    auth: 'user',
    body: AddRunbookSourceRequest,
    response: RunbookSourceInfo,
    status: 201,
  }),
  listRunbookSources: route({ method: 'GET', path: '/v1/runbook-sources', auth: 'user', response: z.object({ sources: z.array(RunbookSourceInfo) }) }),
  syncRunbookSource: route({ method: 'POST', path: '/v1/runbook-sources/:name/sync', auth: 'user', response: RunbookSourceInfo }),
  listRunbooks: route({ method: 'GET', path: '/v1/runbooks', auth: 'user', response: z.object({ runbooks: z.array(RunbookInfo) }) }),
  getRunbook: route({ method: 'GET', path: '/v1/runbooks/:name', auth: 'user', response: RunbookInfo }),
  runRunbook: route({ method: 'POST', path: '/v1/runbooks/:name/run', auth: 'user', body: RunRunbookRequest, response: TaskWithAgents, status: 201 }),

  // ---- webhooks ----
  createWebhook: route({ method: 'POST', path: '/v1/webhooks', auth: 'user', body: CreateWebhookRequest, response: WebhookCreated, status: 201 }),
  listWebhooks: route({ method: 'GET', path: '/v1/webhooks', auth: 'user', response: z.object({ webhooks: z.array(WebhookInfo) }) }),
  deleteWebhook: route({ method: 'DELETE', path: '/v1/webhooks/:id', auth: 'user', response: 'empty' }),
  listWebhookDeliveries: route({
    method: 'GET',
    path: '/v1/webhooks/:id/deliveries',
    auth: 'user',
    query: WebhookDeliveriesQuery,
    response: z.object({ deliveries: z.array(WebhookDelivery) }),
  }),

  // ---- agents, as seen by users ----
  createJoinToken: route({ method: 'POST', path: '/v1/agent-tokens', auth: 'user', body: CreateJoinTokenRequest, response: JoinTokenCreated, status: 201 }),
  listAgents: route({ method: 'GET', path: '/v1/agents', auth: 'user', response: z.object({ agents: z.array(AgentInfo) }) }),
  revokeAgent: route({ method: 'DELETE', path: '/v1/agents/:id', auth: 'user', query: RevokeAgentQuery, response: 'empty' }),
  pruneAgents: route({ method: 'POST', path: '/v1/agents/prune', auth: 'user', body: PruneAgentsRequest, response: PrunedAgents }),

  // ---- audit ----
  listAudit: route({ method: 'GET', path: '/v1/audit', auth: 'user', query: AuditQuery, response: AuditPage }),
  verifyAudit: route({ method: 'GET', path: '/v1/audit/verify', auth: 'user', response: AuditVerification }),

  // ---- teams: organizations, tokens, groups, grants ----
  createOrg: route({ method: 'POST', path: '/v1/orgs', auth: 'user', body: CreateOrgRequest, response: OrgCreated, status: 201 }),
  listOrgs: route({ method: 'GET', path: '/v1/orgs', auth: 'user', response: z.object({ orgs: z.array(OrgInfo) }) }),
  createToken: route({ method: 'POST', path: '/v1/tokens', auth: 'user', body: CreateTokenRequest, response: TokenCreated, status: 201 }),
  listTokens: route({ method: 'GET', path: '/v1/tokens', auth: 'user', response: z.object({ tokens: z.array(TokenInfo) }) }),
  revokeToken: route({ method: 'DELETE', path: '/v1/tokens/:token', auth: 'user', response: 'empty' }),
  createGroup: route({ method: 'POST', path: '/v1/groups', auth: 'user', body: CreateGroupRequest, response: GroupInfo, status: 201 }),
  listGroups: route({ method: 'GET', path: '/v1/groups', auth: 'user', response: z.object({ groups: z.array(GroupInfo) }) }),
  addGroupMember: route({ method: 'PUT', path: '/v1/groups/:group/members/:member', auth: 'user', response: GroupInfo }),
  removeGroupMember: route({ method: 'DELETE', path: '/v1/groups/:group/members/:member', auth: 'user', response: GroupInfo }),
  grantTarget: route({ method: 'PUT', path: '/v1/targets/:name/grants/:group', auth: 'user', body: GrantRequest, response: GrantInfo }),
  revokeGrant: route({ method: 'DELETE', path: '/v1/targets/:name/grants/:group', auth: 'user', response: 'empty' }),

  // ---- people: invitations, local accounts, sign-in ----
  inviteUser: route({ method: 'POST', path: '/v1/users/invitations', auth: 'user', body: InviteUserRequest, response: InvitationCreated, status: 201 }),
  listUsers: route({ method: 'GET', path: '/v1/users', auth: 'user', response: UserList }),
  setUserRole: route({ method: 'PUT', path: '/v1/users/:email/role', auth: 'user', body: SetUserRoleRequest, response: UserInfo }),
  removeUser: route({ method: 'DELETE', path: '/v1/users/:email', auth: 'user', response: 'empty' }),
  /** The page an invitation URL opens (its secret is in the URL's fragment, read by the page's script). */
  invitationPage: route({ method: 'GET', path: '/v1/invite', auth: 'none', response: 'text', textType: 'text/html' }),
  getInvitation: route({ method: 'POST', path: '/v1/invitations/lookup', auth: 'none', body: InvitationRequest, response: InvitationInfo }),
  acceptInvitation: route({ method: 'POST', path: '/v1/invitations/accept', auth: 'none', body: AcceptInvitationRequest, response: UserInfo, status: 201 }),
  signIn: route({ method: 'POST', path: '/v1/sessions', auth: 'none', body: SignInRequest, response: SignedIn, status: 201 }),
  setSso: route({ method: 'PUT', path: '/v1/org/sso', auth: 'user', body: SetSsoRequest, response: SsoInfo }),
  getSso: route({ method: 'GET', path: '/v1/org/sso', auth: 'user', response: SsoInfo }),
  /** Starts a sign-in through the organization's provider: the URL to open in a browser. */
  ssoStart: route({ method: 'POST', path: '/v1/sso/start', auth: 'none', body: SsoStartRequest, response: SsoStarted, status: 201 }),
  /** Where the provider sends the browser back; the page sends it on to the CLI's loopback. */
  ssoCallback: route({ method: 'GET', path: '/v1/sso/callback', auth: 'none', query: SsoCallbackQuery, response: 'text', textType: 'text/html' }),
  ssoExchange: route({ method: 'POST', path: '/v1/sso/exchange', auth: 'none', body: SsoExchangeRequest, response: SignedIn, status: 201 }),
  /** Sign-in without a browser here: a code to confirm at the provider; then poll (FERRY_E_SSO_PENDING until confirmed). */
  ssoDeviceStart: route({ method: 'POST', path: '/v1/sso/device', auth: 'none', body: SsoDeviceStartRequest, response: SsoDeviceStarted, status: 201 }),
  ssoDevicePoll: route({ method: 'POST', path: '/v1/sso/device/poll', auth: 'none', body: SsoDevicePollRequest, response: SignedIn, status: 201 }),

  // ---- the web UI's browser session (cookie + CSRF header; web.ts) ----
  /** Password sign-in for a browser: sets the session cookie and answers the CSRF token. */
  webSignIn: route({ method: 'POST', path: '/v1/web/session', auth: 'none', body: SignInRequest, response: WebSession, status: 201 }),
  /** Redeems the one-time sign-in link `ferry server` prints (the first admin's way into the UI): sets the session cookie. */
  webLinkSignIn: route({ method: 'POST', path: '/v1/web/session/link', auth: 'none', body: WebLinkSignInRequest, response: WebSession, status: 201 }),
  /** Who the browser's session is (and its CSRF token, for a page that was reloaded). */
  webSession: route({ method: 'GET', path: '/v1/web/session', auth: 'user', response: WebSession }),
  /** Signs the browser out: revokes the session and clears the cookie. */
  webSignOut: route({ method: 'DELETE', path: '/v1/web/session', auth: 'user', response: 'empty' }),
  /** Starts a browser sign-in through the organization's provider; the callback sets the cookie and opens the tasks page. */
  webSsoStart: route({ method: 'POST', path: '/v1/web/sso/start', auth: 'none', body: WebSsoStartRequest, response: WebSsoStarted, status: 201 }),

  // ---- the agent side ----
  registerAgent: route({ method: 'POST', path: '/v1/agents/register', auth: 'none', body: RegisterAgentRequest, response: RegisterAgentResponse, status: 201 }),
  poll: route({ method: 'POST', path: '/v1/agent/poll', auth: 'agent', body: PollRequest, response: PollResponse }),
  publishKey: route({ method: 'POST', path: '/v1/agent/targets/:id/key', auth: 'agent', body: PublishKeyRequest, response: KeyPublished, status: 201 }),
  handOverKey: route({ method: 'PUT', path: '/v1/agent/targets/:id/key/handovers/:agent', auth: 'agent', body: HandOverKeyRequest, response: 'empty' }),
  keyReceived: route({ method: 'POST', path: '/v1/agent/targets/:id/key/received', auth: 'agent', body: KeyReceivedRequest, response: 'empty' }),
  rotateKey: route({ method: 'POST', path: '/v1/agent/targets/:id/key/rotation', auth: 'agent', body: RotateKeyRequest, response: KeyPublished }),
  heartbeat: route({ method: 'POST', path: '/v1/agent/heartbeat', auth: 'agent', body: HeartbeatRequest, response: HeartbeatResponse }),
  confirmStart: route({ method: 'POST', path: '/v1/agent/tasks/:id/started', auth: 'agent', response: 'empty' }),
  uploadOutput: route({
    method: 'PUT',
    path: '/v1/agent/tasks/:id/output',
    auth: 'agent',
    query: UploadOutputQuery,
    body: 'frames',
    response: UploadOutputResponse,
  }),
  finishTask: route({ method: 'POST', path: '/v1/agent/tasks/:id/finish', auth: 'agent', body: FinishTaskRequest, response: 'empty' }),
} as const satisfies Record<string, RouteDef>;

export type RouteName = keyof typeof Routes;

// ---- types derived from a route ----

type ParamNames<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<`/${Rest}`>
  : P extends `${string}:${infer Name}`
    ? Name
    : never;

export type RouteParams<R extends RouteDef> = { [K in ParamNames<R['path']>]: string };
export type RouteQuery<R extends RouteDef> = R extends { query: infer Q extends z.ZodType } ? Partial<z.output<Q>> : undefined;
export type RouteBody<R extends RouteDef> = R extends { body: infer B }
  ? B extends z.ZodType
    ? z.input<B>
    : B extends 'frames'
      ? Uint8Array
      : undefined
  : undefined;
/** What the server's handler receives after parsing. */
export type ParsedBody<R extends RouteDef> = R extends { body: infer B }
  ? B extends z.ZodType
    ? z.output<B>
    : B extends 'frames'
      ? Uint8Array
      : undefined
  : undefined;
export type ParsedQuery<R extends RouteDef> = R extends { query: infer Q extends z.ZodType } ? z.output<Q> : undefined;

/** An output read: the frames' bytes and what the headers say. */
export interface OutputPage {
  body: Uint8Array;
  nextOffset: number;
  taskStatus: string;
  complete: boolean;
}

export type RouteResult<R extends RouteDef> = R['response'] extends z.ZodType
  ? z.output<R['response']>
  : R['response'] extends 'text'
    ? string
    : R['response'] extends 'frames'
      ? OutputPage
      : undefined;
/** What the server's handler returns for a JSON answer (before defaults are applied). */
export type RouteAnswer<R extends RouteDef> = R['response'] extends z.ZodType ? z.input<R['response']> : never;

/** Fills `:name` segments with URL-encoded values; a missing value is a programming error. */
export function routePath(def: RouteDef, params: Readonly<Record<string, string>> = {}): string {
  return def.path.replace(/:([A-Za-z]+)/g, (_m, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`route ${def.method} ${def.path}: no value for :${name}`);
    return encodeURIComponent(value);
  });
}
