// Covers API keys: generation, SHA-256 hashing and the key id shown for a key.
import { createHash } from 'node:crypto';
import { KEY_PREFIX, generateKey, hashKey, keyIdOf } from '../../../inventory/keys';

const KEY_SHAPE = /^tfk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/;

describe('generateKey', () => {
  it('answers a secret of the form tfk_<8 hex>_<43 base64url characters> that starts with its keyId', () => {
    const key = generateKey();
    expect(KEY_PREFIX).toBe('tfk');
    expect(key.keyId).toMatch(/^tfk_[0-9a-f]{8}$/);
    expect(key.secret).toMatch(KEY_SHAPE);
    expect(key.secret.startsWith(`${key.keyId}_`)).toBe(true);
  });

  it('answers the SHA-256 of the secret as its hash', () => {
    const key = generateKey();
    expect(key.hash).toBe(hashKey(key.secret));
  });

  it('never answers the same secret or key id twice in a thousand keys', () => {
    const keys = Array.from({ length: 1_000 }, generateKey);
    expect(new Set(keys.map((k) => k.secret)).size).toBe(keys.length);
    expect(new Set(keys.map((k) => k.hash)).size).toBe(keys.length);
    // 32 bits of id: a collision in 1000 has a probability near 1e-4; the secrets above are what must never collide.
    expect(new Set(keys.map((k) => k.keyId)).size).toBeGreaterThan(keys.length - 3);
  });
});

describe('hashKey', () => {
  it('is the lowercase hex SHA-256 of the UTF-8 secret', () => {
    expect(hashKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hashKey('clé')).toBe(createHash('sha256').update(Buffer.from('clé', 'utf8')).digest('hex'));
    expect(hashKey('x')).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('keyIdOf', () => {
  it('answers the id prefix of a generated key', () => {
    const key = generateKey();
    expect(keyIdOf(key.secret)).toBe(key.keyId);
    expect(keyIdOf('tfk_deadbeef_anything')).toBe('tfk_deadbeef');
  });

  it('derives a stable id from the hash for a key an operator chose', () => {
    const secret = 'my-own-bootstrap-key-1234';
    expect(keyIdOf(secret)).toBe(`tfk_${hashKey(secret).slice(0, 8)}`);
    expect(keyIdOf(secret)).toBe(keyIdOf(secret));
  });

  it('does not take an id from a secret that only looks like a key', () => {
    expect(keyIdOf('tfk_DEADBEEF_x')).toBe(`tfk_${hashKey('tfk_DEADBEEF_x').slice(0, 8)}`);
    expect(keyIdOf('tfk_deadbeef')).toBe(`tfk_${hashKey('tfk_deadbeef').slice(0, 8)}`);
  });
});
