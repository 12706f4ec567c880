/**
 * The redaction rules: their names, what each one finds, the level that applies it, and the
 * marker a match becomes. The patterns themselves are per level: secret-rules.ts (`secrets`,
 * also applied at `all`) and personal-rules.ts (`all` only); stages.ts puts them in order.
 */

export type RedactionRuleName =
  | 'private-key'
  | 'authorization-header'
  | 'url-password'
  | 'aws-secret-key'
  | 'aws-session-token'
  | 'gcp-private-key'
  | 'azure-storage-key'
  | 'jwt'
  | 'bearer-token'
  | 'github-token'
  | 'gitlab-token'
  | 'slack-token'
  | 'stripe-key'
  | 'npm-token'
  | 'google-api-key'
  | 'openai-key'
  | 'ferry-token'
  | 'aws-access-key'
  | 'email'
  | 'card-number'
  | 'phone';

export interface RedactionRuleInfo {
  readonly name: RedactionRuleName;
  /** The lowest level that applies the rule: `secrets` rules also apply at `all`. */
  readonly level: 'secrets' | 'all';
  readonly description: string;
}

/** Every rule, in the order they are applied (earlier rules win where matches overlap). */
export const REDACTION_RULES: readonly RedactionRuleInfo[] = [
  { name: 'private-key', level: 'secrets', description: 'PEM/OpenSSH/PGP private key block, BEGIN through END (multi-line)' },
  { name: 'authorization-header', level: 'secrets', description: 'value of an Authorization: / Proxy-Authorization: header, up to a quote or end of line' },
  { name: 'url-password', level: 'secrets', description: 'the password in scheme://user:PASSWORD@host' },
  { name: 'aws-secret-key', level: 'secrets', description: 'labelled AWS secret access key (aws_secret_access_key = ..., SecretAccessKey: ...)' },
  { name: 'aws-session-token', level: 'secrets', description: 'labelled AWS session token (aws_session_token = ..., SessionToken: ...)' },
  { name: 'gcp-private-key', level: 'secrets', description: 'value of a JSON "private_key" field (GCP service account)' },
  { name: 'azure-storage-key', level: 'secrets', description: 'AccountKey=... / SharedAccessKey=... in Azure connection strings' },
  { name: 'jwt', level: 'secrets', description: 'JSON Web Token: three base64url segments starting eyJ' },
  { name: 'bearer-token', level: 'secrets', description: 'the token after "Bearer "' },
  { name: 'github-token', level: 'secrets', description: 'GitHub ghp_/gho_/ghu_/ghs_/ghr_ and github_pat_ tokens' },
  { name: 'gitlab-token', level: 'secrets', description: 'GitLab glpat- (and gldt-/glrt-/glptt-/glsoat-) tokens' },
  { name: 'slack-token', level: 'secrets', description: 'Slack xoxa-/xoxb-/xoxp-/xoxr-/xoxs- tokens' },
  { name: 'stripe-key', level: 'secrets', description: 'Stripe sk_live_/rk_live_ keys' },
  { name: 'npm-token', level: 'secrets', description: 'npm npm_ access tokens' },
  { name: 'google-api-key', level: 'secrets', description: 'Google API keys (AIza + 35 chars)' },
  { name: 'openai-key', level: 'secrets', description: 'OpenAI-style sk-... keys (incl. sk-proj-, sk-ant-)' },
  { name: 'ferry-token', level: 'secrets', description: "Ferry's own credentials: ferry_u_/ferry_a_/ferry_j_ tokens and ferryjoin1. join tokens" },
  { name: 'aws-access-key', level: 'secrets', description: 'AWS access key ids AKIA/ASIA + 16 uppercase alphanumerics' },
  { name: 'email', level: 'all', description: 'e-mail addresses' },
  { name: 'card-number', level: 'all', description: 'card numbers: 13-19 digits, contiguous or in space/dash groups, passing Luhn' },
  { name: 'phone', level: 'all', description: 'phone numbers: E.164 (+ and 8-15 digits, optionally grouped) and North American formats' },
];

export const REDACTION_RULE_NAMES: readonly RedactionRuleName[] = REDACTION_RULES.map((r) => r.name);

export function redactionMarker(rule: RedactionRuleName): string {
  return `[REDACTED:${rule}]`;
}

type Replacer = string | ((match: string) => string);

interface RegexRule {
  readonly name: RedactionRuleName;
  /**
   * Every match holds one of these (as written, or with `ignoreCase` in any ASCII case): a text
   * without any is passed over without running `re`, which is most of the cost on a line that
   * some other rule's hint let in. Absent: the rule always runs.
   */
  readonly anchor?: { readonly words: readonly string[]; readonly ignoreCase?: boolean };
  /** Global; must not match across a newline, and must treat `\n` like the start or end of text. */
  readonly re: RegExp;
  /** A string with $n references, or a function of the whole match (returning it unchanged skips). */
  readonly replace: Replacer;
}

interface CustomRule {
  readonly name: RedactionRuleName;
  /** The same contract as a regex rule, hand-written for speed. */
  readonly apply: (text: string) => string;
}

/** A rule applied line by line: never across `\n`, which is what lets lines be redacted in any grouping. */
export type LineRule = RegexRule | CustomRule;
