// Authentication: X-ApiKey (service and device keys, SHA-256 lookup), a Bearer JWT (users) or a device's
// client certificate, each with a short positive cache; revocation in this process takes effect at once.
import type { CertificateRepository } from '../inventory/certificates.repo';
import type { ApiKeyDoc, SessionFamilyDoc, UserDoc } from '../inventory/documents';
import type { SessionRepository, UserRepository } from '../inventory/identity.repo';
import { hashKey } from '../inventory/keys';
import type { KeyRepository } from '../inventory/keys.repo';
import type { RoleResolver } from './roles';
import { type CertificateIdentity, CertificateVerifier } from './certificates';
import { fingerprintOf } from './pki';
import type { TokenService } from './tokens';
import type { Principal } from './principal';

export interface AuthenticatorOptions {
  /** How long a valid key or user is trusted without asking MongoDB again (ms). */
  readonly cacheTtlMs: number;
  readonly maxCachedEntries: number;
}

const NO_PERMISSIONS: ReadonlySet<never> = new Set();

const DEFAULT_OPTIONS: AuthenticatorOptions = { cacheTtlMs: 5_000, maxCachedEntries: 100_000 };

/** Why a credential did not authenticate; the API says only "invalid" to the caller. */
export type Rejection =
  | 'malformed'
  | 'unknown'
  | 'revoked'
  | 'disabled'
  | 'no-role'
  | 'expired'
  | 'unknown-issuer'
  | 'no-device-id'
  | 'certificates-only';

/** How the revocation listeners name a certificate among key hashes. */
export const certificateCredential = (fingerprint: string): string => `cert:${fingerprint}`;

export type Authentication =
  { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly why: Rejection };

const roleOfKey = (doc: ApiKeyDoc): string | undefined => {
  if (doc.kind === 'admin') return 'platform-admin';
  if (doc.kind === 'device') return doc.deviceId === undefined ? undefined : 'device';
  return doc.role;
};

/** Entries live `ttlMs`; past `maxEntries` the cache starts over rather than grow. */
class TtlCache<T> {
  private readonly entries = new Map<string, { value: T; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {}

  get(key: string): T | undefined {
    const hit = this.entries.get(key);
    if (hit && hit.until > this.now()) return hit.value;
    if (hit) this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: T): void {
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(key, { value, until: this.now() + this.ttlMs });
  }

  async getOrLoad(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit && hit.until > this.now()) return hit.value;
    const value = await load();
    this.set(key, value);
    return value;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}

export class Authenticator {
  private readonly keyCache: TtlCache<ApiKeyDoc>;
  private readonly userCache: TtlCache<UserDoc | null>;
  private readonly sessionCache: TtlCache<SessionFamilyDoc | null>;
  private readonly certificateCache: TtlCache<CertificateIdentity>;
  private readonly policyCache: TtlCache<boolean>;
  private readonly verifier: CertificateVerifier;

  constructor(
    private readonly deps: {
      readonly keys: KeyRepository;
      readonly users: UserRepository;
      readonly sessions: SessionRepository;
      readonly roles: RoleResolver;
      readonly tokens: TokenService;
      readonly certificates: CertificateRepository;
    },
    options: AuthenticatorOptions = DEFAULT_OPTIONS,
    private readonly now: () => number = Date.now,
  ) {
    const make = <T>() => new TtlCache<T>(options.cacheTtlMs, options.maxCachedEntries, now);
    this.keyCache = make();
    this.userCache = make();
    this.sessionCache = make();
    this.certificateCache = make();
    this.policyCache = make();
    this.verifier = new CertificateVerifier(deps.certificates, now);
  }

  get tokens(): TokenService {
    return this.deps.tokens;
  }

  async authenticateKey(secret: string): Promise<Authentication> {
    if (secret.length < 16 || secret.length > 256) return { ok: false, why: 'malformed' };
    const hash = hashKey(secret);
    let doc = this.keyCache.get(hash);
    if (!doc) {
      // Unknown keys are not cached: a flood of made-up keys must not push out the real ones.
      const found = await this.deps.keys.findActive(secret);
      if (!found) return { ok: false, why: 'unknown' };
      this.keyCache.set(hash, found);
      doc = found;
    }
    const role = roleOfKey(doc);
    if (role === undefined) return { ok: false, why: 'no-role' };
    if (doc.deviceId !== undefined && (await this.certificatesOnly(doc.org, doc.deviceId)))
      return { ok: false, why: 'certificates-only' };
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

  /**
   * A device's client certificate (DER), as its device. The certificate's validity is checked on every call;
   * what the inventory says of it is trusted for the cache's lifetime unless revoked in this process.
   */
  async authenticateCertificate(der: Uint8Array): Promise<Authentication> {
    let identity = this.certificateCache.get(fingerprintOf(der));
    if (!identity) {
      const check = await this.verifier.verify(der);
      if (!check.ok) return { ok: false, why: check.why };
      identity = check.identity;
      this.certificateCache.set(identity.fingerprint, identity);
    }
    const now = this.now();
    if (now < identity.notBefore || now > identity.notAfter) return { ok: false, why: 'expired' };
    const { org, deviceId, fingerprint } = identity;
    return {
      ok: true,
      principal: {
        kind: 'device',
        org,
        id: `cert:${fingerprint.slice(0, 16)}`,
        role: 'device',
        permissions: NO_PERMISSIONS,
        platformAdmin: false,
        deviceId,
      },
    };
  }

  /** Forget revoked certificates (by fingerprint), and tell whoever holds connections made with them. */
  forgetCertificates(fingerprints: readonly string[]): void {
    for (const f of fingerprints) this.certificateCache.delete(f);
    this.forget(fingerprints.map(certificateCredential));
  }

  /** Forget a device's credential policy after it changed. */
  forgetPolicy(org: string, deviceId: string): void {
    this.policyCache.delete(`${org}/${deviceId}`);
  }

  private certificatesOnly(org: string, deviceId: string): Promise<boolean> {
    return this.policyCache.getOrLoad(`${org}/${deviceId}`, () =>
      this.deps.certificates.certificatesOnly(org, deviceId),
    );
  }

  private async user(email: string): Promise<UserDoc | null> {
    return this.userCache.getOrLoad(email, () => this.deps.users.get(email));
  }

  private async session(family: string): Promise<SessionFamilyDoc | null> {
    return this.sessionCache.getOrLoad(family, () => this.deps.sessions.getFamily(family));
  }

  forgetSession(family: string): void {
    this.sessionCache.delete(family);
  }

  private readonly revocationListeners: ((hashes: readonly string[]) => void)[] = [];

  /** Called with the SHA-256 of keys revoked in this process (the MQTT broker closes their connections). */
  onRevoked(listener: (hashes: readonly string[]) => void): void {
    this.revocationListeners.push(listener);
  }

  /** Forget revoked keys at once (by their SHA-256), and tell whoever holds connections made with them. */
  forget(hashes: readonly string[]): void {
    for (const h of hashes) this.keyCache.delete(h);
    if (hashes.length > 0) for (const listener of this.revocationListeners) listener(hashes);
  }

  /** Forget a user whose role, password or state changed. */
  forgetUser(email: string): void {
    this.userCache.delete(email);
  }
}
