/** Personal data that level `all` redacts, one of each shape (for the redaction property tests). */
export const PERSONAL_SAMPLES = ['john.doe@example.org', '4111 1111 1111 1111', '4111111111111111', '+14155552671', '(555) 123-4567', '555-123-4567'];
