// X-ApiKey authentication: hashed lookup with a short positive cache, and route guards.
import type { MiddlewareHandler } from 'hono';
import type { ApiKeyDoc } from '../inventory/documents';
import { hashKey } from '../inventory/keys';
import type { KeyRepository } from '../inventory/keys.repo';
import type { AppEnv, Principal } from './context';
import { ApiError } from './errors';

export interface KeyAuthenticatorOptions {
  /** How long a valid key is trusted without asking MongoDB again (ms). Revocation in this process is immediate. */
  readonly cacheTtlMs: number;
  readonly maxCachedKeys: number;
}

const principalOf = (doc: ApiKeyDoc): Principal | null => {
  if (doc.kind === 'admin') return { kind: 'admin', org: doc.org, keyId: doc.keyId };
  if (doc.kind === 'device' && doc.deviceId !== undefined) {
    return { kind: 'device', org: doc.org, keyId: doc.keyId, deviceId: doc.deviceId };
  }
  return null;
};

export class KeyAuthenticator {
  private readonly cache = new Map<string, { principal: Principal; until: number }>();

  constructor(
    private readonly keys: KeyRepository,
    private readonly options: KeyAuthenticatorOptions = { cacheTtlMs: 5_000, maxCachedKeys: 100_000 },
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate(secret: string): Promise<Principal | null> {
    if (secret.length < 16 || secret.length > 256) return null;
    const hash = hashKey(secret);
    const hit = this.cache.get(hash);
    if (hit && hit.until > this.now()) return hit.principal;
    const doc = await this.keys.findActive(secret);
    const principal = doc ? principalOf(doc) : null;
    if (principal) {
      if (this.cache.size >= this.options.maxCachedKeys) this.cache.clear();
      this.cache.set(hash, { principal, until: this.now() + this.options.cacheTtlMs });
    } else {
      this.cache.delete(hash);
    }
    return principal;
  }

  /** Forget revoked keys at once (by their SHA-256). */
  forget(hashes: readonly string[]): void {
    for (const h of hashes) this.cache.delete(h);
  }
}

/** Requires a valid key: the header `X-ApiKey`, or for devices the `X-ApiKey` query parameter as OpenGate allows. */
export function requireKey(options: { allowQueryKey: boolean }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const secret = c.req.header('x-apikey') ?? (options.allowQueryKey ? c.req.query('X-ApiKey') : undefined);
    if (!secret) throw new ApiError('UNAUTHENTICATED', 'missing X-ApiKey header');
    const principal = await c.get('services').auth.authenticate(secret);
    if (!principal) throw new ApiError('UNAUTHENTICATED', 'invalid or revoked API key');
    c.set('principal', principal);
    await next();
  };
}

export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.get('principal').kind !== 'admin') {
      throw new ApiError('PERMISSION_DENIED', 'this route needs an organization admin key');
    }
    await next();
  };
}

/** A device key only works for its own device; an admin key works for every device of its organization. */
export function assertDeviceAccess(principal: Principal, deviceId: string): void {
  if (principal.kind === 'device' && principal.deviceId !== deviceId) {
    throw new ApiError('PERMISSION_DENIED', 'this key belongs to another device');
  }
}
