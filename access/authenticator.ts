// Authentication: X-ApiKey (service and device keys, SHA-256 lookup), a Bearer JWT (users) or a device's
// client certificate, each with a positive cache. Revocation in this process takes effect at once, and in every
// other within about a second through the credential feed (certificates through their own watcher). While the
// feed is live, keys and device credential policies stay cached for minutes, so a fleet's polls and connections
// seldom wait on the store; every other entry, and every entry while the feed is not live, lives 5 s.
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
  /** How long a valid credential is trusted without asking MongoDB again (ms). */
  readonly cacheTtlMs: number;
  /** How long a key or credential policy is trusted while the credential feed is live (ms). */
  readonly feedTrustedTtlMs: number;
  /** The feed is live while its last complete read began at most this long ago (ms): the revocation bound. */
  readonly feedFreshMs: number;
  readonly maxCachedEntries: number;
}

const NO_PERMISSIONS: ReadonlySet<never> = new Set();

const DEFAULT_OPTIONS: AuthenticatorOptions = {
  cacheTtlMs: 5_000,
  feedTrustedTtlMs: 600_000,
  feedFreshMs: 5_000,
  maxCachedEntries: 100_000,
};

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
/** What a connection trusted through a registered CA (`${org}/${fingerprint}`) is also known by, for its deletion. */
export const authorityCredential = (authority: string): string => `ca:${authority}`;

export type Authentication =
  | {
      readonly ok: true;
      readonly principal: Principal;
      /** For a device certificate: what the inventory says of it. */
      readonly certificate?: CertificateIdentity;
    }
  | { readonly ok: false; readonly why: Rejection };

const roleOfKey = (doc: ApiKeyDoc): string | undefined => {
  if (doc.kind === 'admin') return 'platform-admin';
  if (doc.kind === 'device') return doc.deviceId === undefined ? undefined : 'device';
  return doc.role;
};

/** When a load began, and how many forgets the cache had seen then. */
interface LoadTicket {
  readonly at: number;
  readonly forgets: number;
}

/**
 * Entries are trusted `shortMs` on their own; in a cache that follows the credential feed, up to `longMs` while
 * the feed is live (see Authenticator.feedRead). An entry whose load overlapped a forget in its cache is trusted
 * `shortMs` only: it may hold what was forgotten. Past `maxEntries` the cache starts over rather than grow.
 */
class CredentialCache<T> {
  private readonly entries = new Map<string, { value: T; at: number; long: boolean }>();
  private forgets = 0;

  constructor(
    private readonly trust: CacheTrust,
    private readonly followsFeed: boolean,
    private readonly now: () => number,
  ) {}

  get(key: string): T | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    const now = this.now();
    const age = now - hit.at;
    if (age < this.trust.shortMs || (hit.long && age < this.trust.longMs && this.trust.feedLive(now)))
      return hit.value;
    this.entries.delete(key);
    return undefined;
  }

  /** Taken before a load, handed to `set` with what it loaded. */
  ticket(): LoadTicket {
    return { at: this.now(), forgets: this.forgets };
  }

  set(key: string, value: T, ticket: LoadTicket): void {
    if (this.entries.size >= this.trust.maxEntries) this.entries.clear();
    const long = this.followsFeed && ticket.forgets === this.forgets;
    this.entries.set(key, { value, at: ticket.at, long });
  }

  async getOrLoad(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const ticket = this.ticket();
    const value = await load();
    this.set(key, value, ticket);
    return value;
  }

  delete(key: string): void {
    this.forgets++;
    this.entries.delete(key);
  }

  clear(): void {
    this.forgets++;
    this.entries.clear();
  }
}

interface CacheTrust {
  readonly shortMs: number;
  readonly longMs: number;
  readonly maxEntries: number;
  feedLive(now: number): boolean;
}

export class Authenticator {
  private readonly keyCache: CredentialCache<ApiKeyDoc>;
  private readonly userCache: CredentialCache<UserDoc | null>;
  private readonly sessionCache: CredentialCache<SessionFamilyDoc | null>;
  private readonly certificateCache: CredentialCache<CertificateIdentity>;
  private readonly policyCache: CredentialCache<boolean>;
  private readonly verifier: CertificateVerifier;
  /** When the credential feed's last complete read began (ms); none yet. */
  private feedReadAt = Number.NEGATIVE_INFINITY;

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
    const trust: CacheTrust = {
      shortMs: options.cacheTtlMs,
      longMs: options.feedTrustedTtlMs,
      maxEntries: options.maxCachedEntries,
      feedLive: (at) => at - this.feedReadAt <= options.feedFreshMs,
    };
    const make = <T>(followsFeed: boolean) => new CredentialCache<T>(trust, followsFeed, now);
    this.keyCache = make(true);
    this.policyCache = make(true);
    // Revoked certificates and deleted CAs are announced too. A user's, session's or role's change is
    // forgotten as soon as the feed reads it, but they are read often enough to keep the short trust.
    this.certificateCache = make(true);
    this.userCache = make(false);
    this.sessionCache = make(false);
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
      const ticket = this.keyCache.ticket();
      // Unknown keys are not cached: a flood of made-up keys must not push out the real ones.
      const found = await this.deps.keys.findActive(secret);
      if (!found) return { ok: false, why: 'unknown' };
      this.keyCache.set(hash, found, ticket);
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
      const ticket = this.certificateCache.ticket();
      const check = await this.verifier.verify(der);
      if (!check.ok) return { ok: false, why: check.why };
      identity = check.identity;
      this.certificateCache.set(identity.fingerprint, identity, ticket);
    }
    const now = this.now();
    if (now < identity.notBefore || now > identity.notAfter) return { ok: false, why: 'expired' };
    const { org, deviceId, fingerprint } = identity;
    return {
      ok: true,
      certificate: identity,
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

  /**
   * The credential feed read every change announced up to `startedAt` (when its read began) and forgot them:
   * until it falls behind, keys and policies are trusted for `feedTrustedTtlMs`.
   */
  feedRead(startedAt: number): void {
    this.feedReadAt = Math.max(this.feedReadAt, startedAt);
  }

  /**
   * Forget every key, policy and certificate (the feed could not be read for so long that announcements may be
   * gone). Connections made with them stay open: which of them were revoked is not known.
   */
  forgetAllCredentials(): void {
    this.keyCache.clear();
    this.policyCache.clear();
    this.certificateCache.clear();
  }

  /**
   * Forget every certificate (CAs were deleted, `${org}/${fingerprint}`: any of them may have been signed by
   * one), and tell whoever holds connections trusted through those CAs.
   */
  forgetAllCertificates(authorities: readonly string[]): void {
    this.certificateCache.clear();
    this.forget(authorities.map(authorityCredential));
  }

  /** Forget a custom role whose permissions changed, or that was made or deleted. */
  forgetRole(org: string, name: string): void {
    this.deps.roles.forget(org, name);
  }

  /** Forget a user whose role, password or state changed. */
  forgetUser(email: string): void {
    this.userCache.delete(email);
  }
}
