// Covers how a client certificate names a device: by pin, by a registered CA's rule (CN or URI SAN), within
// the CA's organization only; and the refusals (expired, unknown issuer, revoked, no usable device id).
import { X509Certificate } from 'node:crypto';
import { CertificateVerifier, deviceIdFrom } from '../../../access/certificates';
import {
  createAuthority,
  createClientCertificate,
  createCsr,
  CsrError,
  fingerprintOf,
  type KeyPair,
  signCsr,
} from '../../../access/pki';
import type { CertificateAuthorityDoc, DeviceCertificateDoc } from '../../../inventory/documents';

/** An in-memory stand-in for the two lookups the verifier makes. */
class Store {
  readonly authorities: CertificateAuthorityDoc[] = [];
  readonly certificates = new Map<string, DeviceCertificateDoc>();

  getCertificate = async (fingerprint: string) => this.certificates.get(fingerprint) ?? null;
  authoritiesBySubject = async (subject: string) => this.authorities.filter((a) => a.subject === subject);

  register(org: string, ca: KeyPair, rule: Partial<CertificateAuthorityDoc> = {}) {
    const cert = new X509Certificate(ca.certPem);
    const fingerprint = fingerprintOf(cert.raw);
    this.authorities.push({
      _id: `${org}/${fingerprint}`,
      org,
      fingerprint,
      name: 'ca',
      subject: cert.subject,
      pem: ca.certPem,
      deviceIdFrom: 'cn',
      managed: false,
      notBefore: new Date(cert.validFrom),
      notAfter: new Date(cert.validTo),
      createdAt: new Date(),
      ...rule,
    });
  }
}

const der = (pair: KeyPair) => new X509Certificate(pair.certPem).raw;

describe('certificate verification', () => {
  let ca: KeyPair;
  let store: Store;
  let verifier: CertificateVerifier;

  beforeAll(async () => {
    ca = await createAuthority('Fleet', 30);
  });
  beforeEach(() => {
    store = new Store();
    verifier = new CertificateVerifier(store);
  });

  it("names the CN's device in the organization that registered the CA", async () => {
    store.register('acme', ca);
    const result = await verifier.verify(der(await createClientCertificate(ca, 'pump-7')));
    expect(result).toEqual({
      ok: true,
      identity: expect.objectContaining({
        org: 'acme',
        deviceId: 'pump-7',
        authority: `acme/${fingerprintOf(der(ca))}`,
      }),
    });
  });

  it('reads the device from a URI SAN when the CA says so', async () => {
    store.register('acme', ca, { deviceIdFrom: 'san-uri', uriPrefix: 'urn:dev:' });
    const pair = await createClientCertificate(ca, 'ignored', { uris: ['urn:dev:pump-8'] });
    const result = await verifier.verify(der(pair));
    expect(result.ok && result.identity.deviceId).toBe('pump-8');
    const without = await verifier.verify(der(await createClientCertificate(ca, 'pump-9')));
    expect(without).toEqual({ ok: false, why: 'no-device-id' });
  });

  it('refuses an unregistered CA, an expired certificate and a CA that only shares the name', async () => {
    const impostor = await createAuthority('Fleet', 30);
    store.register('acme', ca);
    const now = Date.now();
    const expired = await createClientCertificate(ca, 'pump-7', { now: now - 10 * 86_400_000, days: 1 });
    expect(await verifier.verify(der(expired))).toEqual({ ok: false, why: 'expired' });
    expect(await verifier.verify(der(await createClientCertificate(impostor, 'pump-7')))).toEqual({
      ok: false,
      why: 'unknown-issuer',
    });
    expect(await verifier.verify(Buffer.from('not a certificate'))).toEqual({ ok: false, why: 'malformed' });
  });

  it('honours a pin, and a revocation only in the organization that made it', async () => {
    store.register('acme', ca);
    const pair = await createClientCertificate(ca, 'pump-7');
    const fingerprint = fingerprintOf(der(pair));
    const record = {
      _id: fingerprint,
      deviceId: 'pump-7',
      source: 'revoked',
      createdAt: new Date(),
      revokedAt: new Date(),
    } as const;
    store.certificates.set(fingerprint, { ...record, org: 'other' });
    expect((await verifier.verify(der(pair))).ok).toBe(true);
    store.certificates.set(fingerprint, { ...record, org: 'acme' });
    expect(await verifier.verify(der(pair))).toEqual({ ok: false, why: 'revoked' });

    const self = await createClientCertificate(await createAuthority('self', 30), 'anything');
    const pinned = fingerprintOf(der(self));
    store.certificates.set(pinned, {
      _id: pinned,
      org: 'acme',
      deviceId: 'gauge-1',
      source: 'pinned',
      createdAt: new Date(),
    });
    const result = await verifier.verify(der(self));
    expect(result.ok && [result.identity.org, result.identity.deviceId]).toEqual(['acme', 'gauge-1']);
    // Trusted by its pin, not through a CA: deleting a CA leaves it be.
    expect(result.ok && result.identity.authority).toBeUndefined();
  });

  it('takes no device id that could not be one', () => {
    const cert = { subject: 'CN=../../etc', subjectAltName: undefined } as unknown as X509Certificate;
    expect(deviceIdFrom(cert, { deviceIdFrom: 'cn' })).toBeUndefined();
  });
});

describe('CSR signing', () => {
  it('puts the device id in the subject, whatever the CSR asked, and refuses what is not a CSR', async () => {
    const ca = await createAuthority('Managed', 30);
    const csr = await createCsr('root');
    const pem = await signCsr(ca, csr.csrPem, { id: 'pump-7', days: 10 });
    const cert = new X509Certificate(pem);
    expect(cert.subject).toBe('CN=pump-7');
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    await expect(signCsr(ca, 'garbage', { id: 'pump-7', days: 10 })).rejects.toThrow(CsrError);
  });
});
