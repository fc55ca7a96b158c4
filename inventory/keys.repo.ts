// API keys and organizations: creation, lookup by hash, revocation, and the bootstrap of the first org.
import type { CredentialChanges } from './credential-changes.repo';
import type { ApiKeyDoc, KeyKind, OrganizationDoc } from './documents';
import type { Collections } from './inventory';
import { generateKey, hashKey, keyIdOf } from './keys';

export interface CreatedKey {
  readonly keyId: string;
  readonly secret: string;
}

const DEFAULT_ORG = 'default';

/** Revocations are announced to every process (CredentialChanges) once stored. */
export class KeyRepository {
  constructor(
    private readonly c: Collections,
    private readonly changes: CredentialChanges,
  ) {}

  /** Builds a new key document and its one-time secret; the caller inserts it (alone or in bulk). */
  newKey(
    org: string,
    kind: KeyKind,
    now: Date,
    deviceId?: string,
    extra: { role?: string; name?: string; createdBy?: string } = {},
  ): { doc: ApiKeyDoc; secret: string } {
    const key = generateKey();
    const doc: ApiKeyDoc = { _id: key.hash, keyId: key.keyId, org, kind, createdAt: now };
    if (deviceId !== undefined) doc.deviceId = deviceId;
    if (extra.role !== undefined) doc.role = extra.role;
    if (extra.name !== undefined) doc.name = extra.name;
    if (extra.createdBy !== undefined) doc.createdBy = extra.createdBy;
    return { doc, secret: key.secret };
  }

  async insertMany(docs: readonly ApiKeyDoc[]): Promise<void> {
    if (docs.length > 0) await this.c.apiKeys.insertMany(docs, { ordered: false });
  }

  /** By `_id` alone (the embedded FerretDB serves no other filter from an index); revoked keys are not found. */
  async findActive(secret: string): Promise<ApiKeyDoc | null> {
    const doc = await this.c.apiKeys.findOne({ _id: hashKey(secret) });
    return doc && doc.revokedAt === undefined ? doc : null;
  }

  /** A key by its public id, within one organization (another organization's key is not found). */
  getByKeyId(org: string, keyId: string): Promise<ApiKeyDoc | null> {
    return this.c.apiKeys.findOne({ org, keyId });
  }

  /** Keys of an organization, newest first, without their hashes. */
  listForOrg(
    org: string,
    filter: { kind?: KeyKind; deviceId?: string; includeRevoked?: boolean },
    limit: number,
  ) {
    const query: Record<string, unknown> = { org };
    if (filter.kind !== undefined) query.kind = filter.kind;
    if (filter.deviceId !== undefined) query.deviceId = filter.deviceId;
    if (!filter.includeRevoked) query.revokedAt = { $exists: false };
    return this.c.apiKeys
      .find(query, { projection: { _id: 0 } })
      .sort({ createdAt: -1 })
      .limit(limit)
      .toArray() as Promise<Omit<ApiKeyDoc, '_id'>[]>;
  }

  /** Revokes one key; answers its hash (for the authenticator's cache) or undefined if it was not active. */
  async revoke(org: string, keyId: string, now: Date, replacedBy?: string): Promise<string | undefined> {
    const doc = await this.c.apiKeys.findOne({ org, keyId, revokedAt: { $exists: false } });
    if (!doc) return undefined;
    const set: Partial<ApiKeyDoc> = { revokedAt: now };
    if (replacedBy !== undefined) set.replacedBy = replacedBy;
    await this.c.apiKeys.updateOne({ _id: doc._id }, { $set: set });
    await this.changes.announce('key', [doc._id]);
    return doc._id;
  }

  /**
   * Announces a device's active keys as changed, so that every process asks again and closes the connections
   * made with them (the device now authenticates with certificates only); answers their hashes.
   */
  async announceDeviceKeys(org: string, deviceId: string): Promise<string[]> {
    const keys = await this.c.apiKeys
      .find({ org, deviceId, revokedAt: { $exists: false } }, { projection: { _id: 1 } })
      .toArray();
    const hashes = keys.map((k) => k._id);
    await this.changes.announce('key', hashes);
    return hashes;
  }

  async revokeDeviceKeys(org: string, deviceId: string, now: Date): Promise<string[]> {
    const keys = await this.c.apiKeys.find({ org, deviceId, revokedAt: { $exists: false } }).toArray();
    const hashes = keys.map((k) => k._id);
    if (keys.length > 0) {
      await this.c.apiKeys.updateMany({ _id: { $in: hashes } }, { $set: { revokedAt: now } });
      await this.changes.announce('key', hashes);
    }
    return hashes;
  }

  /**
   * On the first start (no organization yet) creates the default organization and its admin key:
   * the given secret, or a generated one. Answers the secret only when it created the key.
   */
  async bootstrap(
    secret: string | undefined,
    now: Date,
  ): Promise<{ created: boolean; org: string; secret?: string }> {
    const existing = await this.c.organizations.findOne({});
    if (existing) return { created: false, org: existing._id };
    const org: OrganizationDoc = { _id: DEFAULT_ORG, name: 'Default organization', createdAt: now };
    const key = secret ?? generateKey().secret;
    await this.c.apiKeys.updateOne(
      { _id: hashKey(key) },
      {
        $setOnInsert: { keyId: keyIdOf(key), org: org._id, kind: 'admin', name: 'bootstrap', createdAt: now },
      },
      { upsert: true },
    );
    // The organization last: a crash before this line bootstraps again on the next start.
    await this.c.organizations.updateOne(
      { _id: org._id },
      { $setOnInsert: { name: org.name, createdAt: now } },
      { upsert: true },
    );
    return { created: true, org: org._id, secret: key };
  }
}
