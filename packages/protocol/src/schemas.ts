/**
 * Wire schemas: everything that crosses a trust boundary is parsed by one of these.
 * Objects are `.strict()`: an unknown key is a client bug worth reporting, not ignoring.
 */
import { z } from 'zod';
import { AssignedSecret, SealedSecret } from './secrets.js';
import { SettingsPatch, TargetSettings } from './settings.js';
import { TaskArgs, TaskEnv, TaskStdin } from './task-input.js';
import { ReviewPolicy, ReviewPolicyRequest, TaskReview } from './reviews.js';
import { TaskRunbook } from './runbooks.js';

export const API_VERSION = 'v1';

/**
 * Control characters: C0, DEL and C1. Text a client sets reaches operators' terminals, where
 * ESC (0x1b) or CSI (0x9b) starts an escape sequence that can rewrite the screen, set the
 * window title or worse, and CR or BS can hide what came before.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
// eslint-disable-next-line no-control-regex -- as above
const CONTROL_CHARACTERS_BUT_TAB_AND_NEWLINE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** A single-line name or label a client sets (an agent's name, its hostname…): no control characters at all. */
export function printableText(max: number): z.ZodString {
  return z
    .string()
    .max(max)
    .refine((s) => !CONTROL_CHARACTER.test(s), { message: 'must not contain control characters (escape sequences, tabs, newlines)' });
}

/**
 * Replaces control characters other than tab and newline with a visible `\xNN`, so free text
 * (a task's reason, which may quote a program's error output) can be stored and shown without
 * being refused and without driving a terminal.
 */
export function neutralizeControlCharacters(text: string): string {
  return text.replace(CONTROL_CHARACTERS_BUT_TAB_AND_NEWLINE, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export const TaskId = z.string().regex(/^t_[0-9a-z]{10,40}$/, 'not a task id');

export const TARGET_TYPES = ['shell', 'python', 'node', 'postgres', 'postgres-csv', 'mysql', 'mysql-csv', 'kubernetes', 'aws'] as const;
export const TargetType = z.enum(TARGET_TYPES);
export type TargetType = z.infer<typeof TargetType>;

export const AgentMode = z.enum(['hosted', 'self-hosted']);
export type AgentMode = z.infer<typeof AgentMode>;

export const TASK_STATUSES = [
  'queued',
  'pending_review',
  'approved',
  'rejected',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'timed_out',
  'lost',
  'error',
] as const;
export const TaskStatus = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatus>;
export const TERMINAL_STATUSES: readonly TaskStatus[] = ['rejected', 'succeeded', 'failed', 'cancelled', 'timed_out', 'lost', 'error'];
export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** Statuses an agent may report when it finishes a task. */
export const FinalStatus = z.enum(['succeeded', 'failed', 'cancelled', 'timed_out', 'error']);
export type FinalStatus = z.infer<typeof FinalStatus>;

export const TargetName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'target names are 1-63 characters: lower-case letters, digits, ".", "_" and "-", starting with a letter or digit');

export const MAX_SCRIPT_BYTES = 1024 * 1024;
export const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;

/**
 * Network policy of a target's sandbox. `none`: only a private loopback; `public`: the internet
 * but not the agent host's loopback, private, link-local or control-plane addresses; `host`: the
 * agent host's network (self-hosted agents; hosted ones only where the server allows it).
 * Default per type and agent: see `defaultNetwork`.
 */
export const NetworkPolicy = z.enum(['none', 'host', 'public']);
export type NetworkPolicy = z.infer<typeof NetworkPolicy>;

/**
 * What each target type needs. Secrets follow the `PG_HOST` / `MYSQL_HOST` convention; a run
 * missing a required one ends as `error` naming it. Local script types get no network unless
 * asked; types that talk to a database, a cluster or a cloud need it.
 */
export const TARGET_TYPE_INFO: Record<TargetType, { required: readonly string[]; optional: readonly string[]; network: NetworkPolicy; description: string }> = {
  shell: { required: [], optional: [], network: 'none', description: 'a bash script' },
  python: { required: [], optional: [], network: 'none', description: 'a Python 3 script' },
  node: { required: [], optional: [], network: 'none', description: 'a Node.js script' },
  postgres: {
    required: ['PG_HOST', 'PG_USER', 'PG_PASS', 'PG_DB'],
    optional: ['PG_PORT'],
    network: 'host',
    description: 'SQL run by psql; tab-separated results; stops at the first error',
  },
  'postgres-csv': {
    required: ['PG_HOST', 'PG_USER', 'PG_PASS', 'PG_DB'],
    optional: ['PG_PORT'],
    network: 'host',
    description: 'SQL run by psql; CSV results; stops at the first error',
  },
  mysql: {
    required: ['MYSQL_HOST', 'MYSQL_USER', 'MYSQL_PASS', 'MYSQL_DB'],
    optional: ['MYSQL_PORT'],
    network: 'host',
    description: 'SQL run by the mysql/mariadb client; tab-separated results; stops at the first error',
  },
  'mysql-csv': {
    required: ['MYSQL_HOST', 'MYSQL_USER', 'MYSQL_PASS', 'MYSQL_DB'],
    optional: ['MYSQL_PORT'],
    network: 'host',
    description: 'SQL run by the mysql/mariadb client; CSV results; stops at the first error',
  },
  kubernetes: {
    required: ['KUBE_CONFIG'],
    optional: [],
    network: 'host',
    description: 'a bash script with kubectl and the kubeconfig from the KUBE_CONFIG secret',
  },
  aws: {
    required: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
    optional: ['AWS_SESSION_TOKEN', 'AWS_REGION'],
    network: 'host',
    description: 'a bash script with the aws CLI and keys from secrets',
  },
};

/**
 * A type that needs a network gets the host's on a self-hosted agent (which sits next to its
 * private database or cluster) and only public endpoints on the hosted pool.
 */
export function defaultNetwork(type: TargetType, agent: AgentMode): NetworkPolicy {
  const wanted = TARGET_TYPE_INFO[type].network;
  return wanted === 'host' && agent === 'hosted' ? 'public' : wanted;
}

/** Server-side redaction before storage: `secrets` (default), `all` (also personal data), `none`. */
export const RedactLevel = z.enum(['secrets', 'all', 'none']);
export type RedactLevel = z.infer<typeof RedactLevel>;

/** Per-target limits; unset ones take the server's defaults, and none may exceed the server's maxima. */
export const TargetLimits = z
  .object({
    timeoutSeconds: z.number().positive().max(MAX_TIMEOUT_SECONDS).optional(),
    maxOutputBytes: z.number().int().min(1024).optional(),
    maxProcesses: z.number().int().min(8).max(1_000_000).optional(),
    memoryBytes: z
      .number()
      .int()
      .min(16 * 1024 * 1024)
      .optional(),
  })
  .strict();
export type TargetLimits = z.infer<typeof TargetLimits>;
export type ResolvedLimits = Required<TargetLimits>;

// ---- user API ----

export const CreateTargetRequest = z
  .object({
    name: TargetName,
    type: TargetType,
    agent: AgentMode.default('hosted'),
    network: NetworkPolicy.optional(),
    limits: TargetLimits.default({}),
    redact: RedactLevel.default('secrets'),
    /** Plain settings, given to tasks as environment variables and never masked. */
    settings: TargetSettings.default({}),
    /** Whether tasks wait for approval before any agent gets them (reviews.ts); none: no review. */
    review: ReviewPolicyRequest.optional(),
  })
  .strict();
export type CreateTargetRequest = z.infer<typeof CreateTargetRequest>;

/**
 * `target update`: only what is given changes; the type, the agent mode, the sealing key, the
 * secrets and the agents stay. Limits given replace those limits; settings given with a value
 * are set, with null removed.
 */
export const UpdateTargetRequest = z
  .object({
    network: NetworkPolicy.optional(),
    limits: TargetLimits.optional(),
    redact: RedactLevel.optional(),
    settings: SettingsPatch.optional(),
    review: ReviewPolicyRequest.optional(),
  })
  .strict();
export type UpdateTargetRequest = z.infer<typeof UpdateTargetRequest>;

export const Target = z.object({
  id: z.string(),
  name: z.string(),
  type: TargetType,
  agent: AgentMode,
  network: NetworkPolicy,
  redact: RedactLevel,
  /** Key id of the target's sealing key, once an agent has published one. */
  keyId: z.string().nullable(),
  /** The limits in force: the target's own, or the server's defaults. */
  limits: z.object({ timeoutSeconds: z.number(), maxOutputBytes: z.number(), maxProcesses: z.number(), memoryBytes: z.number() }),
  /** Plain settings (not secrets): shown in clear. */
  settings: z.record(z.string(), z.string()),
  createdAt: z.string(),
  agentsOnline: z.number().int(),
  /** Agents (not revoked) that hold the target's current sealing key; empty: no agent can open its secrets. */
  keyHolders: z.array(z.object({ id: z.string(), name: z.string(), online: z.boolean() })),
  /** `ferry target rotate-key` was asked and no agent holding the key has done it yet. */
  keyRotationPending: z.boolean(),
  /** The review rule its tasks go through (servers before reviews: absent). */
  review: ReviewPolicy.optional(),
});
export type Target = z.infer<typeof Target>;

export const CreateTaskRequest = z
  .object({
    target: TargetName,
    script: z.string().max(MAX_SCRIPT_BYTES, 'the script is over 1 MiB'),
    timeoutSeconds: z.number().positive().max(MAX_TIMEOUT_SECONDS).optional(),
    /** Bytes for the task's stdin, base64 (task-input.ts); none: stdin is empty. */
    stdin: TaskStdin.optional(),
    /** Arguments after the script: `$1 $2` of a shell script, sys.argv[1:] of a Python one. */
    args: TaskArgs.optional(),
    /** Plain environment variables, never masked; secrets of the same name win (and are refused at creation). */
    env: TaskEnv.optional(),
  })
  .strict();
export type CreateTaskRequest = z.infer<typeof CreateTaskRequest>;

export const Task = z.object({
  id: z.string(),
  target: z.string(),
  status: TaskStatus,
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  reason: z.string().nullable(),
  agent: z.string().nullable(),
  createdBy: z.string(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  timeoutSeconds: z.number(),
  outputBytes: z.number().int(),
  cancelRequested: z.boolean(),
  /** What the task was given besides its script (optional: older servers do not say). */
  args: z.array(z.string()).optional(),
  env: z.record(z.string(), z.string()).optional(),
  stdinBytes: z.number().int().optional(),
  /** When the server's output retention removed the stored output (servers before it: absent). */
  outputExpiredAt: z.string().nullable().default(null),
  /** The review the task went through (null: its target needed none; servers before reviews: absent). */
  review: TaskReview.nullable().optional(),
  /** The runbook it ran: source, file, commit and parameters (null: a script of its own). */
  runbook: TaskRunbook.nullable().optional(),
});
export type Task = z.infer<typeof Task>;

export const ListTasksQuery = z
  .object({
    target: TargetName.optional(),
    status: TaskStatus.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(50),
    /** Only tasks this person (e-mail) or service account (name) started. */
    person: z.string().trim().toLowerCase().min(1).max(320).optional(),
    /** Paging: only tasks older than the task of this id (the last of the previous page). */
    before: z.string().min(1).max(64).optional(),
  })
  .strict();

export const ReadOutputQuery = z
  .object({
    offset: z.coerce.number().int().min(0).default(0),
    waitSeconds: z.coerce.number().min(0).max(30).default(0),
    maxBytes: z.coerce
      .number()
      .int()
      .min(1)
      .max(8 * 1024 * 1024)
      .default(4 * 1024 * 1024),
  })
  .strict();

export const CreateJoinTokenRequest = z
  .object({
    hosted: z.boolean().default(false),
    /** With `hosted`: the pool shared by every organization (instance administrators only), not the organization's own. */
    shared: z.boolean().default(false),
    targets: z.array(TargetName).max(100).default([]),
    ttlSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 24 * 3600)
      .default(24 * 3600),
  })
  .strict()
  .refine((r) => r.hosted !== r.targets.length > 0, {
    message: 'a join token is either for the hosted pool (hosted: true) or for named targets, not both and not neither',
  })
  .refine((r) => !r.shared || r.hosted, { message: 'shared: true is for hosted-pool agents (hosted: true)' });

export const JoinTokenCreated = z.object({ id: z.string(), token: z.string(), expiresAt: z.string() });

/** `agent prune`: agents revoked, or not heard from for this long, leave the list. */
export const PruneAgentsRequest = z
  .object({
    offlineForSeconds: z
      .number()
      .int()
      .min(60, 'the offline period must be at least a minute')
      .max(10 * 365 * 24 * 3600)
      .default(7 * 24 * 3600),
  })
  .strict();
export const PrunedAgents = z.object({
  pruned: z.array(z.object({ id: z.string(), name: z.string(), why: z.enum(['revoked', 'offline']) })),
});

export const AgentInfo = z.object({
  id: z.string(),
  name: z.string(),
  hostname: z.string(),
  version: z.string(),
  platform: z.string(),
  hosted: z.boolean(),
  /** Of the hosted pool every organization shares (the instance's; only its administrators revoke it). Servers before: absent. */
  shared: z.boolean().optional(),
  targets: z.array(z.string()),
  online: z.boolean(),
  lastSeenAt: z.string(),
  registeredAt: z.string(),
  revoked: z.boolean(),
  runningTasks: z.number().int(),
  /** Names of the targets whose current sealing key this agent holds. */
  holdsKeys: z.array(z.string()),
});
export type AgentInfo = z.infer<typeof AgentInfo>;

export const AuditEntry = z.object({
  seq: z.number().int(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  details: z.record(z.string(), z.unknown()),
  hash: z.string(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

// ---- agent API ----

export const RegisterAgentRequest = z
  .object({
    joinSecret: z.string().min(1).max(200),
    name: printableText(100).min(1),
    hostname: printableText(255),
    version: printableText(50),
    platform: printableText(50),
    concurrency: z.number().int().min(1).max(256),
  })
  .strict();

export const RegisterAgentResponse = z.object({ agentId: z.string(), token: z.string() });

const TargetIdField = z.string().regex(/^g_[0-9a-z]+$/);
const KeyIdField = z.string().regex(/^[0-9a-f]{32}$/);

/**
 * What an agent says of its keys on its first poll: its own identity key (the public half of the
 * key pair target keys are wrapped to for it) and which target keys it holds.
 */
export const AgentKeys = z
  .object({
    identityKeyPem: z.string().max(4096),
    held: z.array(z.object({ targetId: TargetIdField, keyId: KeyIdField }).strict()).max(10_000),
  })
  .strict();
export type AgentKeys = z.infer<typeof AgentKeys>;

export const PollRequest = z
  .object({
    free: z.number().int().min(0).max(256),
    running: z.array(TaskId).max(256),
    waitSeconds: z.number().min(0).max(30),
    keys: AgentKeys.optional(),
  })
  .strict();

export const Assignment = z.object({
  id: TaskId,
  target: z.object({ id: z.string().regex(/^g_[0-9a-z]+$/), name: z.string(), type: TargetType }),
  script: z.string(),
  /** The task's stdin (base64), arguments and plain environment; absent means none. */
  stdin: z.string().optional(),
  args: z.array(z.string()).optional(),
  env: z.record(z.string(), z.string()).optional(),
  timeoutSeconds: z.number(),
  leaseSeconds: z.number(),
  network: NetworkPolicy,
  maxOutputBytes: z.number().int(),
  maxProcesses: z.number().int(),
  memoryBytes: z.number().int(),
  orgId: z.string(),
  secrets: z.array(AssignedSecret),
  /** The target's plain settings, given to the task as environment variables (secrets win a clash). */
  settings: z.record(z.string(), z.string()).default({}),
});
export type Assignment = z.infer<typeof Assignment>;

export const PollResponse = z.object({
  task: Assignment.nullable(),
  cancel: z.array(TaskId),
  /** Targets this agent serves that have no sealing key yet: make one and publish its public half. */
  keyRequests: z.array(z.object({ targetId: z.string().regex(/^g_[0-9a-z]+$/), targetName: z.string() })).optional(),
  /** Targets whose key this agent holds and another agent serving them lacks: wrap the key to that agent's identity key. */
  keyHandovers: z
    .array(z.object({ targetId: TargetIdField, targetName: z.string(), orgId: z.string(), keyId: KeyIdField, agentId: z.string(), identityKeyPem: z.string() }))
    .optional(),
  /** Target keys another agent wrapped for this one: unwrap, check the key id, keep, and confirm. */
  keyDeliveries: z.array(z.object({ targetId: TargetIdField, targetName: z.string(), orgId: z.string(), keyId: KeyIdField, wrapped: SealedSecret })).optional(),
  /** Targets whose key a user asked to rotate: make a new key, re-seal every value with it, post both. */
  keyRotations: z
    .array(
      z.object({
        targetId: TargetIdField,
        targetName: z.string(),
        orgId: z.string(),
        keyId: KeyIdField,
        secrets: z.array(z.object({ name: z.string(), sealed: SealedSecret, setAt: z.number().int() })),
      }),
    )
    .optional(),
});
export type PollResponse = z.infer<typeof PollResponse>;

export const HeartbeatRequest = z.object({ running: z.array(TaskId).max(256) }).strict();
export const HeartbeatResponse = z.object({
  cancel: z.array(z.string()),
  /** Tasks this agent reported that it no longer holds: stop them and drop their output. */
  revoked: z.array(z.string()),
  heartbeatSeconds: z.number(),
});
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>;

/**
 * The most frames the server takes from one upload: it stores the first ones, ignores the rest
 * of the body, and answers with the offset after what it took (`nextOffset`), where the agent
 * continues. An agent should send at most this many (its spool merges adjacent frames of a
 * stream, so only finely interleaved stdout and stderr come near it).
 */
export const MAX_UPLOAD_FRAMES = 4096;

export const UploadOutputQuery = z.object({ offset: z.coerce.number().int().min(0) }).strict();
export const UploadOutputResponse = z.object({ nextOffset: z.number().int() });

export const FinishTaskRequest = z
  .object({
    status: FinalStatus,
    exitCode: z.number().int().nullable(),
    signal: printableText(20).nullable(),
    reason: z.string().max(4000).transform(neutralizeControlCharacters).nullable(),
    outputBytes: z.number().int().min(0),
    /** SHA-256 of the raw output, as agents before the output digest send it (checked by the server that received every chunk). */
    outputSha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
    /** The raw output's digest (OutputDigest, hex), which any server replica checks against what it stored. */
    outputDigest: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
  })
  .strict()
  .refine((r) => r.outputSha256 !== undefined || r.outputDigest !== undefined, {
    message: 'outputDigest (or, from older agents, outputSha256) is required',
    path: ['outputDigest'],
  });
export type FinishTaskRequest = z.infer<typeof FinishTaskRequest>;
