// Authentication: X-ApiKey (service and device keys, SHA-256 lookup) or a Bearer JWT (users), each with a
// short positive cache; revocation in this process takes effect at once.
import type { ApiKeyDoc, SessionFamilyDoc, UserDoc } from '../inventory/documents';
import type { SessionRepository, UserRepository } from '../inventory/identity.repo';
import { hashKey } from '../inventory/keys';
import type { KeyRepository } from '../inventory/keys.repo';
import type { RoleResolver } from './access/roles';
import type { TokenService } from './access/tokens';
import type { Principal } from './context';

export interface AuthenticatorOptions {
  /** How long a valid key or user is trusted without asking MongoDB again (ms). */
  readonly cacheTtlMs: number;
  readonly maxCachedEntries: number;
}

const DEFAULT_OPTIONS: AuthenticatorOptions = { cacheTtlMs: 5_000, maxCachedEntries: 100_000 };

/** Why a credential did not authenticate; the API says only "invalid" to the caller. */
export type Rejection = 'malformed' | 'unknown' | 'revoked' | 'disabled' | 'no-role';

export type Authentication =
  { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly why: Rejection };

const roleOfKey = (doc: ApiKeyDoc): string | undefined => {
  if (doc.kind === 'admin') return 'platform-admin';
  if (doc.kind === 'device') return doc.deviceId === undefined ? undefined : 'device';
  return doc.role;
};

export class Authenticator {
  private readonly keyCache = new Map<string, { doc: ApiKeyDoc; until: number }>();
  private readonly userCache = new Map<string, { doc: UserDoc | null; until: number }>();
  private readonly sessionCache = new Map<string, { doc: SessionFamilyDoc | null; until: number }>();

  constructor(
    private readonly deps: {
      readonly keys: KeyRepository;
      readonly users: UserRepository;
      readonly sessions: SessionRepository;
      readonly roles: RoleResolver;
      readonly tokens: TokenService;
    },
    private readonly options: AuthenticatorOptions = DEFAULT_OPTIONS,
    private readonly now: () => number = Date.now,
  ) {}

  get tokens(): TokenService {
    return this.deps.tokens;
  }

  async authenticateKey(secret: string): Promise<Authentication> {
    if (secret.length < 16 || secret.length > 256) return { ok: false, why: 'malformed' };
    const hash = hashKey(secret);
    const hit = this.keyCache.get(hash);
    let doc: ApiKeyDoc | null = hit && hit.until > this.now() ? hit.doc : null;
    if (!doc) {
      this.keyCache.delete(hash);
      doc = await this.deps.keys.findActive(secret);
      if (!doc) return { ok: false, why: 'unknown' };
      if (this.keyCache.size >= this.options.maxCachedEntries) this.keyCache.clear();
      this.keyCache.set(hash, { doc, until: this.now() + this.options.cacheTtlMs });
    }
    const role = roleOfKey(doc);
    if (role === undefined) return { ok: false, why: 'no-role' };
    const permissions = await this.deps.roles.resolve(doc.org, role);
    if (!permissions) return { ok: false, why: 'no-role' };
    const principal: Principal = {
      kind: doc.kind === 'device' ? 'device' : 'service',
      org: doc.org,
      id: doc.keyId,
      role,
      permissions,
      platformAdmin: role === 'platform-admin',
      ...(doc.deviceId !== undefined ? { deviceId: doc.deviceId } : {}),
    };
    return { ok: true, principal };
  }

  async authenticateBearer(token: string): Promise<Authentication> {
    const claims = await this.deps.tokens.verify(token);
    if (!claims) return { ok: false, why: 'malformed' };
    const user = await this.user(claims.sub);
    if (!user || user.org !== claims.org) return { ok: false, why: 'unknown' };
    if (user.disabled) return { ok: false, why: 'disabled' };
    // Logout and a password change end the session, and with it the access tokens it issued.
    const session = await this.session(claims.sid);
    if (!session || session.userId !== user._id || session.revokedAt !== undefined)
      return { ok: false, why: 'revoked' };
    if (session.createdAt < user.sessionsValidAfter) return { ok: false, why: 'revoked' };
    const permissions = await this.deps.roles.resolve(user.org, user.role);
    if (!permissions) return { ok: false, why: 'no-role' };
    return {
      ok: true,
      principal: {
        kind: 'user',
        org: user.org,
        id: user._id,
        role: user.role,
        permissions,
        platformAdmin: user.role === 'platform-admin',
      },
    };
  }

  private async user(email: string): Promise<UserDoc | null> {
    const hit = this.userCache.get(email);
    if (hit && hit.until > this.now()) return hit.doc;
    const doc = await this.deps.users.get(email);
    if (this.userCache.size >= this.options.maxCachedEntries) this.userCache.clear();
    this.userCache.set(email, { doc, until: this.now() + this.options.cacheTtlMs });
    return doc;
  }

  private async session(family: string): Promise<SessionFamilyDoc | null> {
    const hit = this.sessionCache.get(family);
    if (hit && hit.until > this.now()) return hit.doc;
    const doc = await this.deps.sessions.getFamily(family);
    if (this.sessionCache.size >= this.options.maxCachedEntries) this.sessionCache.clear();
    this.sessionCache.set(family, { doc, until: this.now() + this.options.cacheTtlMs });
    return doc;
  }

  forgetSession(family: string): void {
    this.sessionCache.delete(family);
  }

  /** Forget revoked keys at once (by their SHA-256). */
  forget(hashes: readonly string[]): void {
    for (const h of hashes) this.keyCache.delete(h);
  }

  /** Forget a user whose role, password or state changed. */
  forgetUser(email: string): void {
    this.userCache.delete(email);
  }
}
