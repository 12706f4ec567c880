/** A mistake in how the command was used; printed without a stack, exit code 255 (exit-codes.ts). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
