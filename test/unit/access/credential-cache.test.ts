// How long the authenticator trusts a cached key, device certificate and credential policy: 5 s on their own,
// minutes while the credential feed keeps reading announced changes, never past a change the feed has read, and
// only 5 s for an entry whose load overlapped a change. In-memory stand-ins for the store; a clock the test moves.
import { X509Certificate } from 'node:crypto';
import { Authenticator } from '../../../access/authenticator';
import { CredentialFeed } from '../../../access/credential-feed';
import { RoleResolver } from '../../../access/roles';
import type { TokenService } from '../../../access/tokens';
import type { CredentialChangeDoc } from '../../../inventory/credential-changes.repo';
import { createAuthority, createClientCertificate, fingerprintOf } from '../../../access/pki';
import type { ApiKeyDoc, CertificateAuthorityDoc } from '../../../inventory/documents';
import { generateKey, hashKey } from '../../../inventory/keys';

const OPTIONS = { cacheTtlMs: 5_000, feedTrustedTtlMs: 600_000, feedFreshMs: 5_000, maxCachedEntries: 1_000 };

function setUp() {
  const clock = { now: 1_000_000 };
  const now = () => clock.now;
  const key = generateKey();
  const keys = new Map<string, ApiKeyDoc>([
    [
      key.hash,
      { _id: key.hash, keyId: key.keyId, org: 'o', kind: 'device', deviceId: 'd1', createdAt: new Date(0) },
    ],
  ]);
  const policies = new Map<string, boolean>();
  const reads = { keys: 0, policies: 0 };
  const authorities: CertificateAuthorityDoc[] = [];
  const certificateReads = { n: 0 };
  const revokedCertificates = new Set<string>();
  /** Holds a key lookup until released, to let a change land while it is in flight. */
  const gate: { hold?: Promise<void> } = {};
  const store = {
    findActive: async (secret: string) => {
      reads.keys++;
      const doc = keys.get(hashKey(secret));
      const found = doc && doc.revokedAt === undefined ? { ...doc } : null;
      await gate.hold;
      return found;
    },
    certificatesOnly: async (org: string, deviceId: string) => {
      reads.policies++;
      return policies.get(`${org}/${deviceId}`) === true;
    },
    getCertificate: async (fingerprint: string) => {
      certificateReads.n++;
      if (!revokedCertificates.has(fingerprint)) return null;
      const at = new Date(clock.now);
      return { _id: fingerprint, org: 'o', deviceId: 'd1', source: 'revoked', createdAt: at, revokedAt: at };
    },
    authoritiesBySubject: async (subject: string) => authorities.filter((a) => a.subject === subject),
  };
  const changes: CredentialChangeDoc[] = [];
  const deps = {
    keys: store,
    certificates: store,
    users: {},
    sessions: {},
    roles: new RoleResolver({ get: async () => null } as never),
    tokens: {} as TokenService,
  } as unknown as ConstructorParameters<typeof Authenticator>[0];
  const auth = new Authenticator(deps, OPTIONS, now);
  const feed = new CredentialFeed(
    { since: async (since) => changes.filter((c) => c.at >= since) },
    auth,
    () => undefined,
    1_000,
    now,
  );
  let n = 0;
  const announce = (kind: CredentialChangeDoc['kind'], ids: string[]) =>
    changes.push({ _id: `c${++n}`, at: new Date(clock.now), kind, ids });
  const revoke = () => {
    keys.get(key.hash)!.revokedAt = new Date(clock.now);
    announce('key', [key.hash]);
  };
  const ok = async () => (await auth.authenticateKey(key.secret)).ok;
  /** Moves the clock, with the feed read every second on the way. */
  const elapse = async (ms: number, feedRuns = true) => {
    for (let left = ms; left > 0; left -= 1_000) {
      clock.now += Math.min(1_000, left);
      if (feedRuns) await feed.poll();
    }
  };
  return {
    clock,
    auth,
    feed,
    key,
    keys,
    policies,
    reads,
    authorities,
    certificateReads,
    revokedCertificates,
    gate,
    revoke,
    announce,
    ok,
    elapse,
  };
}

describe('cached credentials', () => {
  it('asks the store again after 5 s when no feed is read', async () => {
    const t = setUp();
    expect(await t.ok()).toBe(true);
    await t.elapse(4_000, false);
    expect(await t.ok()).toBe(true);
    expect(t.reads).toEqual({ keys: 1, policies: 1 });
    await t.elapse(1_500, false);
    expect(await t.ok()).toBe(true);
    expect(t.reads).toEqual({ keys: 2, policies: 2 });
  });

  it('trusts a key and its policy for ten minutes while the feed is read, and not a moment past', async () => {
    const t = setUp();
    await t.feed.poll();
    expect(await t.ok()).toBe(true);
    await t.elapse(599_000);
    expect(await t.ok()).toBe(true);
    expect(t.reads).toEqual({ keys: 1, policies: 1 });
    await t.elapse(1_000);
    expect(await t.ok()).toBe(true);
    expect(t.reads).toEqual({ keys: 2, policies: 2 });
  });

  it("trusts a device certificate for ten minutes while the feed is read, until its revocation or its CA's deletion is read", async () => {
    const t = setUp();
    t.clock.now = Date.now();
    const ca = await createAuthority('Fleet', 30);
    const caCert = new X509Certificate(ca.certPem);
    const caFingerprint = fingerprintOf(caCert.raw);
    t.authorities.push({
      _id: `o/${caFingerprint}`,
      org: 'o',
      fingerprint: caFingerprint,
      name: 'fleet',
      subject: caCert.subject,
      pem: ca.certPem,
      deviceIdFrom: 'cn',
      managed: false,
      notBefore: new Date(caCert.validFrom),
      notAfter: new Date(caCert.validTo),
      createdAt: new Date(),
    });
    const der = async () => new X509Certificate((await createClientCertificate(ca, 'd1')).certPem).raw;
    const [first, second] = [await der(), await der()];
    const closed: string[][] = [];
    t.auth.onRevoked((hashes) => closed.push([...hashes]));
    const ok = async (cert: Uint8Array) => (await t.auth.authenticateCertificate(cert)).ok;
    await t.feed.poll();
    expect(await ok(first)).toBe(true);
    expect(await ok(second)).toBe(true);
    await t.elapse(300_000);
    expect(await ok(first)).toBe(true);
    expect(t.certificateReads.n).toBe(2);
    // Revoked in another process: refused once the feed reads it, and its connections are closed.
    t.revokedCertificates.add(fingerprintOf(first));
    expect(await ok(first)).toBe(true);
    t.announce('certificate', [fingerprintOf(first)]);
    await t.elapse(1_000);
    expect(closed).toHaveLength(1);
    expect(await ok(first)).toBe(false);
    expect(await ok(second)).toBe(true);
    // The CA is deleted elsewhere: every certificate is read again once the feed has read that.
    t.authorities.length = 0;
    expect(await ok(second)).toBe(true);
    t.announce('authority', [`o/${caFingerprint}`]);
    await t.elapse(1_000);
    expect(await ok(second)).toBe(false);
    // The broker closes the connections trusted through that CA.
    expect(closed).toEqual([[`cert:${fingerprintOf(first)}`], [`ca:o/${caFingerprint}`]]);
  });

  it('stops trusting beyond 5 s once the feed has not been read for 5 s', async () => {
    const t = setUp();
    await t.feed.poll();
    expect(await t.ok()).toBe(true);
    await t.elapse(60_000);
    expect(await t.ok()).toBe(true);
    expect(t.reads.keys).toBe(1);
    // The key is revoked meanwhile, and the announcement never read: the store unreachable to the feed.
    t.keys.get(t.key.hash)!.revokedAt = new Date(t.clock.now);
    await t.elapse(5_000, false);
    expect(await t.ok()).toBe(true);
    await t.elapse(1_000, false);
    expect(await t.ok()).toBe(false);
  });

  it('refuses a key once the feed has read its revocation', async () => {
    const t = setUp();
    await t.feed.poll();
    expect(await t.ok()).toBe(true);
    await t.elapse(30_000);
    t.revoke();
    expect(await t.ok()).toBe(true);
    await t.elapse(1_000);
    expect(await t.ok()).toBe(false);
  });

  it("reads a device's policy again once its change is announced, and refuses the key it now forbids", async () => {
    const t = setUp();
    await t.feed.poll();
    expect(await t.ok()).toBe(true);
    await t.elapse(30_000);
    t.policies.set('o/d1', true);
    t.announce('policy', ['o/d1']);
    await t.elapse(1_000);
    expect(await t.auth.authenticateKey(t.key.secret)).toEqual({ ok: false, why: 'certificates-only' });
    expect(t.reads.keys).toBe(1);
  });

  it('trusts for 5 s only a key whose lookup was in flight when a change was read', async () => {
    const t = setUp();
    await t.feed.poll();
    let release!: () => void;
    t.gate.hold = new Promise((resolve) => (release = resolve));
    const first = t.ok();
    // The lookup has read the key; the key is revoked and the feed reads it before the lookup returns.
    await new Promise((resolve) => setImmediate(resolve));
    t.revoke();
    await t.elapse(1_000);
    release();
    t.gate.hold = undefined;
    // It answers what it read, and the cache holds that while it may still be the short trust of any entry...
    expect(await first).toBe(true);
    await t.elapse(3_000);
    expect(await t.ok()).toBe(true);
    expect(t.reads.keys).toBe(1);
    // ...and not past it, though the feed is live: the revocation it read is not read again.
    await t.elapse(1_000);
    expect(await t.ok()).toBe(false);
    expect(t.reads.keys).toBe(2);
  });

  it('forgets every key once the feed comes back from a silence longer than half the announcements are kept', async () => {
    const t = setUp();
    await t.feed.poll();
    await t.elapse(31 * 60_000, false);
    // Looked up while the feed was silent: announcements it missed may be gone by now.
    expect(await t.ok()).toBe(true);
    expect(t.reads.keys).toBe(1);
    await t.feed.poll();
    expect(await t.ok()).toBe(true);
    expect(t.reads.keys).toBe(2);
    // After a silence shorter than that the feed reads what it missed, and keeps the cache.
    await t.elapse(10 * 60_000, false);
    expect(await t.ok()).toBe(true);
    await t.feed.poll();
    expect(await t.ok()).toBe(true);
    expect(t.reads.keys).toBe(3);
  });

  it('hands each announcement on once, closing the connections of the keys it names', async () => {
    const t = setUp();
    const closed: string[][] = [];
    t.auth.onRevoked((hashes) => closed.push([...hashes]));
    t.announce('key', ['h1', 'h2']);
    expect(await t.feed.poll()).toBe(1);
    await t.elapse(3_000);
    t.announce('key', ['h3']);
    expect(await t.feed.poll()).toBe(1);
    expect(await t.feed.poll()).toBe(0);
    expect(closed).toEqual([['h1', 'h2'], ['h3']]);
  });
});

describe('the credential feed', () => {
  it('forgets each kind of change where it is cached', async () => {
    const calls: string[] = [];
    const auth = {
      forget: (hashes: readonly string[]) => calls.push(`key ${hashes.join()}`),
      forgetPolicy: (org: string, deviceId: string) => calls.push(`policy ${org} ${deviceId}`),
      forgetUser: (email: string) => calls.push(`user ${email}`),
      forgetSession: (family: string) => calls.push(`session ${family}`),
      forgetRole: (org: string, name: string) => calls.push(`role ${org} ${name}`),
      forgetCertificates: (fingerprints: readonly string[]) =>
        calls.push(`certificate ${fingerprints.join()}`),
      forgetAllCertificates: (authorities: readonly string[]) =>
        calls.push(`all certificates, CAs ${authorities.join()}`),
      forgetAllCredentials: () => calls.push('all'),
      feedRead: () => calls.push('read'),
    };
    const at = new Date();
    const changes: CredentialChangeDoc[] = [
      { _id: 'a', at, kind: 'key', ids: ['h1', 'h2'] },
      { _id: 'b', at, kind: 'policy', ids: ['o/d/with/slashes'] },
      { _id: 'c', at, kind: 'user', ids: ['ann@example.com'] },
      { _id: 'd', at, kind: 'session', ids: ['f1', 'f2'] },
      { _id: 'e', at, kind: 'role', ids: ['o/auditor', 'no-org'] },
      { _id: 'f', at, kind: 'certificate', ids: ['fp1', 'fp2'] },
      { _id: 'g', at, kind: 'authority', ids: ['o/cafp'] },
    ];
    const feed = new CredentialFeed({ since: async () => changes }, auth, () => undefined);
    expect(await feed.poll()).toBe(7);
    expect(calls).toEqual([
      'key h1,h2',
      'policy o d/with/slashes',
      'user ann@example.com',
      'session f1',
      'session f2',
      'role o auditor',
      'certificate fp1,fp2',
      'all certificates, CAs o/cafp',
      'read',
    ]);
  });

  it('passes over a kind of change it does not know, and forgets nothing for it', async () => {
    const calls: string[] = [];
    const record = (what: string) => () => void calls.push(what);
    const auth = {
      forget: record('key'),
      forgetPolicy: record('policy'),
      forgetUser: record('user'),
      forgetSession: record('session'),
      forgetRole: record('role'),
      forgetCertificates: record('certificate'),
      forgetAllCertificates: record('all certificates'),
      forgetAllCredentials: record('all'),
      feedRead: record('read'),
    };
    const unknown = {
      _id: 'x',
      at: new Date(),
      kind: 'gateway',
      ids: ['o/fp'],
    } as unknown as CredentialChangeDoc;
    const feed = new CredentialFeed({ since: async () => [unknown] }, auth, () => undefined);
    expect(await feed.poll()).toBe(1);
    expect(calls).toEqual(['read']);
  });
});
