// Device certificates as credentials: the CAs an organization trusts, the certificates TwinFlow knows by
// fingerprint (pinned, issued, revoked) and each device's credential policy.
import type { CredentialChanges } from './credential-changes.repo';
import type { CertificateAuthorityDoc, DeviceCertificateDoc } from './documents';
import type { Collections } from './inventory';
import { isDuplicateKey } from './write-errors';

export class CertificateRepository {
  constructor(
    private readonly c: Collections,
    private readonly changes: CredentialChanges,
  ) {}

  /** Adds a CA; false when the organization has it already. */
  async insertAuthority(doc: CertificateAuthorityDoc): Promise<boolean> {
    try {
      await this.c.certificateAuthorities.insertOne(doc);
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  /** An organization's CAs, without their keys. */
  listAuthorities(org: string): Promise<Omit<CertificateAuthorityDoc, 'keyPem'>[]> {
    return this.c.certificateAuthorities
      .find({ org }, { projection: { keyPem: 0 } })
      .sort({ createdAt: 1 })
      .toArray();
  }

  getAuthority(org: string, fingerprint: string): Promise<CertificateAuthorityDoc | null> {
    return this.c.certificateAuthorities.findOne({ _id: `${org}/${fingerprint}` });
  }

  /** The newest CA the organization manages (holds the key of), to sign CSRs with. */
  async managedAuthority(org: string): Promise<CertificateAuthorityDoc | null> {
    const found = await this.c.certificateAuthorities
      .find({ org, managed: true })
      .sort({ createdAt: -1 })
      .limit(1)
      .toArray();
    return found[0] ?? null;
  }

  /** CAs of every organization with this subject: the candidates for a device certificate's issuer. */
  authoritiesBySubject(subject: string): Promise<CertificateAuthorityDoc[]> {
    return this.c.certificateAuthorities.find({ subject }, { projection: { keyPem: 0 } }).toArray();
  }

  async deleteAuthority(org: string, fingerprint: string): Promise<boolean> {
    const res = await this.c.certificateAuthorities.deleteOne({ _id: `${org}/${fingerprint}` });
    if (res.deletedCount !== 1) return false;
    // Every process forgets the device certificates it trusted: some may have been signed by this CA.
    await this.changes.announce('authority', [`${org}/${fingerprint}`]);
    return true;
  }

  /** Records a certificate; false when its fingerprint is known already (in any organization). */
  async insertCertificate(doc: DeviceCertificateDoc): Promise<boolean> {
    try {
      await this.c.deviceCertificates.insertOne(doc);
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  /** By `_id` alone: the lookup every certificate login makes. */
  getCertificate(fingerprint: string): Promise<DeviceCertificateDoc | null> {
    return this.c.deviceCertificates.findOne({ _id: fingerprint });
  }

  listCertificates(org: string, deviceId: string): Promise<DeviceCertificateDoc[]> {
    return this.c.deviceCertificates.find({ org, deviceId }).sort({ createdAt: -1 }).limit(1_000).toArray();
  }

  /**
   * Revokes a device's certificate: marks the known one, or records the fingerprint of one TwinFlow never saw
   * (issued by a registered CA). False when it was revoked already or belongs to another device.
   */
  async revoke(org: string, deviceId: string, fingerprint: string, now: Date, replacedBy?: string) {
    const set: Partial<DeviceCertificateDoc> = { revokedAt: now };
    if (replacedBy !== undefined) set.replacedBy = replacedBy;
    const res = await this.c.deviceCertificates.updateOne(
      { _id: fingerprint, org, deviceId, revokedAt: { $exists: false } },
      { $set: set },
    );
    const revoked =
      res.modifiedCount === 1 ||
      (await this.insertCertificate({
        _id: fingerprint,
        org,
        deviceId,
        source: 'revoked',
        createdAt: now,
        revokedAt: now,
      }));
    // Every process forgets it and closes the connections made with it.
    if (revoked) await this.changes.announce('certificate', [fingerprint]);
    return revoked;
  }

  /** Revokes every certificate TwinFlow knows for the device (it is decommissioned); answers their fingerprints. */
  async revokeDevice(org: string, deviceId: string, now: Date): Promise<string[]> {
    const docs = await this.c.deviceCertificates
      .find({ org, deviceId, revokedAt: { $exists: false } }, { projection: { _id: 1 } })
      .toArray();
    if (docs.length > 0)
      await this.c.deviceCertificates.updateMany(
        { _id: { $in: docs.map((d) => d._id) } },
        { $set: { revokedAt: now } },
      );
    const fingerprints = docs.map((d) => d._id);
    await this.changes.announce('certificate', fingerprints);
    return fingerprints;
  }

  async certificatesOnly(org: string, deviceId: string): Promise<boolean> {
    const doc = await this.c.credentialPolicies.findOne({ _id: `${org}/${deviceId}` });
    return doc?.certificatesOnly === true;
  }

  async setPolicy(org: string, deviceId: string, certificatesOnly: boolean, now: Date): Promise<void> {
    await this.c.credentialPolicies.updateOne(
      { _id: `${org}/${deviceId}` },
      { $set: { org, deviceId, certificatesOnly, updatedAt: now } },
      { upsert: true },
    );
    // Every process reads the policy again: the device's keys stop (or start) working everywhere.
    await this.changes.announce('policy', [`${org}/${deviceId}`]);
  }
}
