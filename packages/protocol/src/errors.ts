/**
 * The error-code registry. Every error that crosses the API carries one of these codes;
 * clients branch on the code, never on the message. Codes are stable: never rename one.
 */
export const ErrorCodes = {
  FERRY_E_BAD_REQUEST: { status: 400, message: 'The request is not valid.' },
  FERRY_E_INVALID_JSON: { status: 400, message: 'The request body is not valid JSON.' },
  FERRY_E_TASK_ENV_REFUSED: {
    status: 400,
    message: "An --env variable has the name of one of the target's secrets; secrets win, so choose another name or change the secret.",
  },
  FERRY_E_EMPTY_SCRIPT: { status: 400, message: 'The script is empty: give a command with -c, a file with -f, or the script on stdin.' },
  FERRY_E_UNAUTHENTICATED: { status: 401, message: 'Missing or invalid token. Log in again with `ferry login`.' },
  FERRY_E_JOIN_TOKEN_INVALID: { status: 401, message: 'The join token is not valid. Create a new one with `ferry agent token create`.' },
  FERRY_E_JOIN_TOKEN_EXPIRED: { status: 401, message: 'The join token has expired. Create a new one with `ferry agent token create`.' },
  FERRY_E_JOIN_TOKEN_USED: {
    status: 401,
    message: 'The join token was already used. Join tokens work once; create a new one with `ferry agent token create`.',
  },
  FERRY_E_AGENT_REVOKED: {
    status: 401,
    message: 'this agent was revoked; start it with a new join token: ferry agent token create …, then ferry agent start --join-token TOKEN',
  },
  FERRY_E_JOIN_TOKEN_TARGET_DELETED: {
    status: 410,
    message:
      'Every target this join token names was deleted since it was made; create a token for a target that exists: ferry agent token create --target NAME',
  },
  FERRY_E_AGENT_ORPHANED: {
    status: 403,
    message: 'Every target this agent served was deleted, so it has nothing to serve and stops; start it with a join token for another target.',
  },
  FERRY_E_TOKEN_EXPIRED: { status: 401, message: 'This token has expired. Ask an admin for a new one (`ferry token create`).' },
  FERRY_E_TOKEN_REVOKED: { status: 401, message: 'This token was revoked. Ask an admin for a new one (`ferry token create`).' },
  FERRY_E_FORBIDDEN: { status: 403, message: 'This token is not allowed to do that.' },
  FERRY_E_ROLE_TOO_HIGH: { status: 403, message: "A token cannot be given a role above its creator's." },
  FERRY_E_NOT_FOUND: { status: 404, message: 'No such API endpoint.' },
  FERRY_E_TARGET_NOT_FOUND: { status: 404, message: 'No such target. `ferry target list` shows the targets.' },
  FERRY_E_TASK_NOT_FOUND: { status: 404, message: 'No such task. `ferry task list` shows the tasks.' },
  FERRY_E_AGENT_NOT_FOUND: { status: 404, message: 'No such agent. `ferry agent list` shows the agents.' },
  FERRY_E_TOKEN_NOT_FOUND: { status: 404, message: 'No such token. `ferry token list` shows the tokens.' },
  FERRY_E_RUNBOOK_NOT_FOUND: { status: 404, message: 'No such runbook. `ferry runbook list` shows them.' },
  FERRY_E_RUNBOOK_SOURCE_NOT_FOUND: { status: 404, message: 'No such runbook source. `ferry runbook source list` shows them.' },
  FERRY_E_RUNBOOK_SOURCE_EXISTS: { status: 409, message: 'A runbook source with that name already exists.' },
  FERRY_E_RUNBOOK_PARAMS: { status: 400, message: "The runbook's parameters are missing, mistyped or not allowed; `ferry runbook show NAME` lists them." },
  FERRY_E_WEBHOOK_NOT_FOUND: { status: 404, message: 'No such webhook. `ferry webhook list` shows them.' },
  FERRY_E_GROUP_NOT_FOUND: { status: 404, message: 'No such group. `ferry group list` shows the groups.' },
  FERRY_E_PRINCIPAL_NOT_FOUND: { status: 404, message: 'No such service account or person in this organization. `ferry token list` shows them.' },
  FERRY_E_GRANT_NOT_FOUND: { status: 404, message: 'That group has no grant on that target.' },
  FERRY_E_ORG_EXISTS: { status: 409, message: 'An organization with that name already exists.' },
  FERRY_E_NAME_TAKEN: { status: 409, message: 'That name is already used by a token, service account or person of this organization.' },
  FERRY_E_GROUP_EXISTS: { status: 409, message: 'A group with that name already exists.' },
  FERRY_E_TARGET_EXISTS: { status: 409, message: 'A target with that name already exists.' },
  FERRY_E_TARGET_BUSY: { status: 409, message: 'The target has queued or running tasks; cancel them first.' },
  FERRY_E_TASK_FINISHED: { status: 409, message: 'The task has already finished.' },
  FERRY_E_NOT_PENDING_REVIEW: {
    status: 409,
    message: 'The task is not waiting for review: it was approved, rejected or cancelled already, or its target needs none.',
  },
  FERRY_E_ALREADY_REVIEWED: { status: 409, message: 'You already approved this task; a second approval must come from someone else.' },
  FERRY_E_SELF_APPROVAL: { status: 403, message: 'The author of a task cannot approve it; ask someone with the review right on its target.' },
  FERRY_E_NOT_A_REVIEWER: { status: 403, message: "You do not have the review right on this task's target." },
  FERRY_E_LEASE_LOST: { status: 409, message: 'This agent no longer holds the task.' },
  FERRY_E_OUTPUT_GAP: { status: 409, message: 'Output chunk does not start where the server expects; resend from the expected offset.' },
  FERRY_E_OUTPUT_MISMATCH: { status: 409, message: 'Output length or checksum does not match what the server stored.' },
  FERRY_E_OUTPUT_DIGEST: {
    status: 422,
    message: "The output chunk's digest does not match the output the server has with this chunk added; nothing of it was stored.",
  },
  FERRY_E_OUTPUT_LIMIT: { status: 413, message: "The task's output is over its limit." },
  FERRY_E_LIMIT_TOO_HIGH: { status: 400, message: "A limit is above the server's maximum." },
  FERRY_E_TARGET_KEY_EXISTS: { status: 409, message: 'The target already has a sealing key.' },
  FERRY_E_TARGET_NO_KEY: { status: 409, message: 'The target has no sealing key yet: its agent publishes one when it first connects.' },
  FERRY_E_KEY_MISMATCH: { status: 409, message: 'The secret was sealed with a key the target no longer uses; seal it again.' },
  FERRY_E_KEY_CHANGED: { status: 409, message: "The target's sealing key or its secrets changed meanwhile; the agent tries again with what is in force." },
  FERRY_E_LAST_KEY_HOLDER: {
    status: 409,
    message:
      "This agent is the only one holding a target's sealing key: revoking it makes the target's secrets unreadable. Start another agent first, or pass --force.",
  },
  FERRY_E_SECRET_NOT_FOUND: { status: 404, message: 'No such secret on this target.' },
  FERRY_E_SECRET_TOO_LARGE: { status: 413, message: 'The secret is over the size limit.' },
  FERRY_E_TOO_MANY_SECRETS: { status: 409, message: 'The target has too many secrets.' },
  FERRY_E_OUTPUT_QUOTA_REACHED: {
    status: 409,
    message: "The organization's stored task output has reached its quota; new tasks are refused until output is removed.",
  },
  FERRY_E_SETTING_CONFLICT: { status: 409, message: 'A target may not have a setting and a secret of the same name.' },
  FERRY_E_BODY_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  FERRY_E_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported content type; send application/json.' },
  FERRY_E_REQUEST_TIMEOUT: { status: 408, message: 'The request did not arrive in time; the connection was closed.' },
  FERRY_E_HEADERS_TOO_LARGE: { status: 431, message: "The request's headers are too large." },
  FERRY_E_RATE_LIMITED: { status: 429, message: 'Too many attempts from this address; retry after the number of seconds in the Retry-After header.' },
  FERRY_E_WEAK_PASSWORD: {
    status: 400,
    message: 'The password is too weak: use at least 12 characters, not your e-mail address and not a common password.',
  },
  FERRY_E_INVITATION_INVALID: {
    status: 404,
    message: 'This invitation is unknown, already used or expired; ask an admin for a new one (`ferry user invite`).',
  },
  FERRY_E_SIGN_IN_FAILED: { status: 401, message: 'Wrong e-mail address or password.' },
  FERRY_E_ORG_REQUIRED: { status: 400, message: 'This e-mail address has accounts in several organizations; name one with --org.' },
  FERRY_E_USER_NOT_FOUND: { status: 404, message: 'No such person in this organization. `ferry user list` shows them.' },
  FERRY_E_SELF_CHANGE: { status: 409, message: 'You cannot change your own role or remove yourself; ask another admin.' },
  FERRY_E_SSO_NOT_CONFIGURED: { status: 404, message: 'This organization has no single sign-on; an admin sets it up with `ferry org sso set`.' },
  FERRY_E_SSO_STATE: { status: 400, message: 'This sign-in is unknown, already used or expired; start again with `ferry login --sso ORG`.' },
  FERRY_E_SSO_REFUSED: { status: 401, message: "The identity provider's answer was refused; start again with `ferry login --sso ORG`." },
  FERRY_E_SSO_DOMAIN: { status: 403, message: "Your e-mail address is not in one of the organization's allowed domains." },
  FERRY_E_SSO_PENDING: { status: 409, message: 'The sign-in code has not been confirmed at the identity provider yet; poll again after the interval.' },
  FERRY_E_SSO_PROVIDER: { status: 502, message: 'The identity provider could not be reached or answered something unexpected.' },
  FERRY_E_SIGN_IN_LINK_INVALID: {
    status: 401,
    message: 'This sign-in link is unknown, already used or expired; restart `ferry server` for a new one, or sign in with a password.',
  },
  FERRY_E_CSRF: {
    status: 403,
    message: "This browser request lacks the session's CSRF token (header x-ferry-csrf); reload the page and try again.",
  },
  FERRY_E_CROSS_SITE: { status: 403, message: 'Refused: a request signed in by the session cookie came from another site.' },
  FERRY_E_INTERNAL: { status: 500, message: 'Internal server error.' },
  FERRY_E_UNAVAILABLE: { status: 503, message: 'The server is shutting down or not ready; retry shortly.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

/**
 * Codes a client raises itself, when no server answer carries one: the server never sends
 * these, so they have no HTTP status.
 */
export const ClientErrorCodes = {
  FERRY_E_NETWORK: 'The server could not be reached, or the connection broke.',
  FERRY_E_UNEXPECTED_RESPONSE: 'The server sent an answer this client does not understand.',
  FERRY_E_CA_MISMATCH: "The server's CA certificate does not match the pinned fingerprint.",
  FERRY_E_BAD_FINGERPRINT: 'That is not a SHA-256 fingerprint (64 hex digits, colons optional).',
  FERRY_E_BAD_SERVER_URL: 'No server URL was given, or one of them is not an https:// URL.',
} as const satisfies Record<string, string>;

export type ClientErrorCode = keyof typeof ClientErrorCodes;

/** The one error body every API error has. */
export interface ErrorBody {
  statusCode: number;
  code: ErrorCode;
  error: string;
  message: string;
  details?: Record<string, unknown>;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export class FerryError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, options?: { details?: Record<string, unknown>; cause?: unknown }) {
    super(message ?? ErrorCodes[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    this.code = code;
    this.statusCode = ErrorCodes[code].status;
    this.details = options?.details;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = {
      statusCode: this.statusCode,
      code: this.code,
      error: STATUS_TEXT[this.statusCode] ?? 'Error',
      message: this.message,
    };
    if (this.details) body.details = this.details;
    return body;
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ErrorCodes, value);
}

/** Turns anything thrown into an Error, keeping the original as `cause`. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown), { cause: thrown });
}
