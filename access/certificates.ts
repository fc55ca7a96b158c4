// Device certificates as credentials. A client certificate names a device when TwinFlow knows it by fingerprint
// (pinned or issued), or when a CA one organization registered signed it: then the device is the one the CA's
// rule reads from it (CN or URI SAN), in that organization only. Expired, not yet valid and revoked
// certificates name nobody.
import { X509Certificate } from 'node:crypto';
import type { CertificateAuthorityDoc } from '../inventory/documents';
import type { CertificateRepository } from '../inventory/certificates.repo';
import { DEVICE_ID_PATTERN } from '../workflows/ids';
import { commonNameOf, fingerprintOf, isCurrent, uriNameOf } from './pki';

/** The device a certificate names. */
export interface CertificateIdentity {
  readonly org: string;
  readonly deviceId: string;
  readonly fingerprint: string;
  /** The certificate's validity (ms since the epoch), checked again on every use of a cached identity. */
  readonly notBefore: number;
  readonly notAfter: number;
  /**
   * `${org}/${fingerprint}` of the registered CA that vouches for it; none for a certificate known by its own
   * fingerprint (pinned or issued here), which stays trusted whatever becomes of its CA.
   */
  readonly authority?: string;
}

export type CertificateRejection = 'malformed' | 'expired' | 'unknown-issuer' | 'no-device-id' | 'revoked';

export type CertificateCheck =
  | { readonly ok: true; readonly identity: CertificateIdentity }
  | { readonly ok: false; readonly why: CertificateRejection };

/** The device id a CA's rule reads from a certificate it signed. */
export function deviceIdFrom(
  cert: X509Certificate,
  ca: Pick<CertificateAuthorityDoc, 'deviceIdFrom' | 'uriPrefix'>,
): string | undefined {
  const id = ca.deviceIdFrom === 'cn' ? commonNameOf(cert) : uriNameOf(cert, ca.uriPrefix ?? '');
  return id !== undefined && DEVICE_ID_PATTERN.test(id) ? id : undefined;
}

/** Whether `ca` (current, a CA) signed `cert`. */
export function signedBy(cert: X509Certificate, ca: X509Certificate, now: number): boolean {
  return ca.ca && isCurrent(ca, now) && cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

export class CertificateVerifier {
  constructor(
    private readonly repo: Pick<CertificateRepository, 'getCertificate' | 'authoritiesBySubject'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Which device the DER certificate names, checked against what the inventory holds now. */
  async verify(der: Uint8Array): Promise<CertificateCheck> {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
    } catch {
      return { ok: false, why: 'malformed' };
    }
    const now = this.now();
    if (!isCurrent(cert, now)) return { ok: false, why: 'expired' };
    const fingerprint = fingerprintOf(der);
    const validity = {
      fingerprint,
      notBefore: Date.parse(cert.validFrom),
      notAfter: Date.parse(cert.validTo),
    };
    const known = await this.repo.getCertificate(fingerprint);
    if (known && known.source !== 'revoked') {
      if (known.revokedAt !== undefined) return { ok: false, why: 'revoked' };
      return { ok: true, identity: { org: known.org, deviceId: known.deviceId, ...validity } };
    }
    const found = await this.fromAuthority(cert, now);
    if (!found.ok) return found;
    // A revocation counts only in the organization that made it: no one revokes another's devices.
    if (known && known.org === found.identity.org) return { ok: false, why: 'revoked' };
    return { ok: true, identity: { ...found.identity, ...validity } };
  }

  private async fromAuthority(
    cert: X509Certificate,
    now: number,
  ): Promise<
    | Extract<CertificateCheck, { ok: false }>
    | { ok: true; identity: Pick<CertificateIdentity, 'org' | 'deviceId' | 'authority'> }
  > {
    const candidates = await this.repo.authoritiesBySubject(cert.issuer);
    for (const ca of candidates) {
      if (!signedBy(cert, new X509Certificate(ca.pem), now)) continue;
      const deviceId = deviceIdFrom(cert, ca);
      if (deviceId === undefined) return { ok: false, why: 'no-device-id' };
      return { ok: true, identity: { org: ca.org, deviceId, authority: ca._id } };
    }
    return { ok: false, why: 'unknown-issuer' };
  }
}
