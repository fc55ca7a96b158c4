// API keys: high-entropy secrets with a readable id prefix, stored only as SHA-256.
import { createHash, randomBytes } from 'node:crypto';

export const KEY_PREFIX = 'tfk';

export interface NewKey {
  readonly keyId: string;
  readonly secret: string;
  readonly hash: string;
}

export const hashKey = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

/** `tfk_<8 hex id>_<43 chars of base64url>`: 32 random bytes, so SHA-256 without salt or stretching is safe. */
export function generateKey(): NewKey {
  const keyId = `${KEY_PREFIX}_${randomBytes(4).toString('hex')}`;
  const secret = `${keyId}_${randomBytes(32).toString('base64url')}`;
  return { keyId, secret, hash: hashKey(secret) };
}

/** The id shown for a key whose value was chosen by an operator (the bootstrap key). */
export function keyIdOf(secret: string): string {
  const match = /^(tfk_[0-9a-f]{8})_/.exec(secret);
  return match?.[1] ?? `${KEY_PREFIX}_${hashKey(secret).slice(0, 8)}`;
}
