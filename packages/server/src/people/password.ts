/**
 * Passwords of local accounts: Argon2id (through @node-rs/argon2, a prebuilt binding) with the
 * library's defaults (19 MiB, 2 passes, OWASP's minimum), and the minimum policy: at least 12
 * characters, not the e-mail address (nor its part before the @), not a common password.
 */
import { Algorithm, hash, verify } from '@node-rs/argon2';
import { FerryError, MIN_PASSWORD_LENGTH } from '@ferry/protocol';

/** Common passwords of 12 characters or more (shorter ones fail the length rule anyway). */
const COMMON = new Set([
  '123456789012',
  '1234567890123',
  '12345678901234',
  '123123123123',
  '111111111111',
  '000000000000',
  'password1234',
  'password12345',
  'password123456',
  'passwordpassword',
  'qwertyuiopas',
  'qwerty123456',
  'qwertyuiop123',
  '1q2w3e4r5t6y',
  '1qaz2wsx3edc',
  'iloveyou1234',
  'letmein12345',
  'welcome12345',
  'welcome123456',
  'changeme1234',
  'administrator',
  'admin1234567',
  'abcdefghijkl',
  'abc123abc123',
  'trustno1trustno1',
  'football1234',
  'baseball1234',
  'princess1234',
  'sunshine1234',
  'superman1234',
  'monkey123456',
  'dragon123456',
  'correcthorsebatterystaple',
  'ferryferryferry',
]);

/** Throws FERRY_E_WEAK_PASSWORD naming the rule the password breaks. */
export function checkPasswordPolicy(password: string, email: string): void {
  const weak = (why: string): FerryError => new FerryError('FERRY_E_WEAK_PASSWORD', `The password is too weak: ${why}.`);
  if ([...password].length < MIN_PASSWORD_LENGTH) throw weak(`use at least ${MIN_PASSWORD_LENGTH} characters`);
  const lower = password.toLowerCase();
  const local = email.split('@')[0] ?? email;
  if (lower.includes(email) || (local.length >= 4 && lower.includes(local))) throw weak('it must not contain your e-mail address');
  if (COMMON.has(lower)) throw weak('it is a common password; choose another');
  if (new Set(lower).size < 5) throw weak('it repeats too few different characters');
}

export function hashPassword(password: string): Promise<string> {
  return hash(password, { algorithm: Algorithm.Argon2id });
}

/** A hash of a password nobody has: unknown e-mails are checked against it, so they take as long. */
let decoy: Promise<string> | undefined;

export async function verifyPassword(stored: string | undefined, password: string): Promise<boolean> {
  if (stored === undefined) {
    decoy ??= hashPassword('decoy-password-that-is-never-used');
    await verify(await decoy, password).catch(() => false);
    return false;
  }
  return verify(stored, password).catch(() => false);
}
