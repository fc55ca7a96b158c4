// Users, custom roles, refresh-token sessions, the audit log and settings: the identity side of the inventory.
// Lookups go by _id where they can (the embedded FerretDB serves only _id filters from an index).
import { createHash, randomBytes } from 'node:crypto';
import type { Collection, OptionalUnlessRequiredId } from 'mongodb';
import type {
  AuditDoc,
  OrganizationDoc,
  RefreshTokenDoc,
  RoleDoc,
  SessionFamilyDoc,
  UserDoc,
} from './documents';
import type { CredentialChanges } from './credential-changes.repo';
import type { Collections } from './inventory';
import { GroupInsert, isDuplicateKey } from './write-errors';

/** Inserts a document; false when its _id exists already. */
async function insertNew<T extends { _id: string }>(collection: Collection<T>, doc: T): Promise<boolean> {
  try {
    await collection.insertOne(doc as OptionalUnlessRequiredId<T>);
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

export class OrganizationRepository {
  constructor(private readonly c: Collections) {}

  get(id: string): Promise<OrganizationDoc | null> {
    return this.c.organizations.findOne({ _id: id });
  }

  insert(doc: OrganizationDoc): Promise<boolean> {
    return insertNew(this.c.organizations, doc);
  }

  list(limit: number, after?: string): Promise<OrganizationDoc[]> {
    const filter = after === undefined ? {} : { _id: { $gt: after } };
    return this.c.organizations.find(filter).sort({ _id: 1 }).limit(limit).toArray();
  }
}

const normalizeEmail = (email: string): string => email.trim().toLowerCase();

/** Changes to users are announced to every process (CredentialChanges) once stored. */
export class UserRepository {
  constructor(
    private readonly c: Collections,
    private readonly changes: CredentialChanges,
  ) {}

  get(email: string): Promise<UserDoc | null> {
    return this.c.users.findOne({ _id: normalizeEmail(email) });
  }

  /** The user if it belongs to `org`; another organization's user is not found. */
  async getInOrg(org: string, email: string): Promise<UserDoc | null> {
    const doc = await this.get(email);
    return doc && doc.org === org ? doc : null;
  }

  /** Inserts a new user; false when the address is taken (in any organization). */
  insert(doc: UserDoc): Promise<boolean> {
    return insertNew(this.c.users, doc);
  }

  /** Creates the first admin from configuration unless the address exists (its password is then kept). */
  async insertIfMissing(u: {
    email: string;
    org: string;
    role: string;
    passwordHash: () => Promise<string>;
    createdBy: string;
    now: Date;
  }): Promise<boolean> {
    if (await this.get(u.email)) return false;
    return this.insert({
      _id: normalizeEmail(u.email),
      org: u.org,
      role: u.role,
      passwordHash: await u.passwordHash(),
      disabled: false,
      sessionsValidAfter: 0,
      createdAt: u.now,
      createdBy: u.createdBy,
      updatedAt: u.now,
    });
  }

  listForOrg(org: string, limit: number, after?: string): Promise<UserDoc[]> {
    const filter = after === undefined ? { org } : { org, _id: { $gt: after } };
    return this.c.users.find(filter).sort({ _id: 1 }).limit(limit).toArray();
  }

  async update(email: string, set: Partial<Omit<UserDoc, '_id' | 'org'>>): Promise<void> {
    await this.c.users.updateOne({ _id: normalizeEmail(email) }, { $set: set });
    await this.changes.announce('user', [normalizeEmail(email)]);
  }

  async delete(email: string): Promise<void> {
    await this.c.users.deleteOne({ _id: normalizeEmail(email) });
    await this.changes.announce('user', [normalizeEmail(email)]);
  }
}

export const roleDocId = (org: string, name: string): string => `${org}/${name}`;

/** Changes to custom roles are announced to every process (CredentialChanges) once stored. */
export class RoleRepository {
  constructor(
    private readonly c: Collections,
    private readonly changes: CredentialChanges,
  ) {}

  get(org: string, name: string): Promise<RoleDoc | null> {
    return this.c.roles.findOne({ _id: roleDocId(org, name) });
  }

  /** A process that looked the name up before holds it as no role: it asks again. */
  async insert(doc: RoleDoc): Promise<boolean> {
    const inserted = await insertNew(this.c.roles, doc);
    if (inserted) await this.changes.announce('role', [doc._id]);
    return inserted;
  }

  listForOrg(org: string): Promise<RoleDoc[]> {
    return this.c.roles.find({ org }).sort({ _id: 1 }).limit(1_000).toArray();
  }

  async replace(doc: RoleDoc): Promise<boolean> {
    const res = await this.c.roles.replaceOne({ _id: doc._id }, doc);
    if (res.matchedCount !== 1) return false;
    await this.changes.announce('role', [doc._id]);
    return true;
  }

  async delete(org: string, name: string): Promise<boolean> {
    const res = await this.c.roles.deleteOne({ _id: roleDocId(org, name) });
    if (res.deletedCount !== 1) return false;
    await this.changes.announce('role', [roleDocId(org, name)]);
    return true;
  }

  /** Whether any user or service key of the organization holds the role. */
  async inUse(org: string, name: string): Promise<boolean> {
    const user = await this.c.users.findOne({ org, role: name }, { projection: { _id: 1 } });
    if (user) return true;
    const key = await this.c.apiKeys.findOne(
      { org, role: name, revokedAt: { $exists: false } },
      { projection: { _id: 1 } },
    );
    return key !== null;
  }
}

export interface IssuedRefreshToken {
  readonly token: string;
  readonly family: string;
  readonly expiresAt: number;
}

export type RefreshOutcome =
  | { readonly ok: true; readonly doc: RefreshTokenDoc }
  | { readonly ok: false; readonly reason: 'unknown' | 'expired' | 'revoked' }
  | { readonly ok: false; readonly reason: 'reused'; readonly family: string };

/**
 * Rotating refresh tokens. Each token works once; using one again (a stolen copy, or the thief after the
 * owner) revokes the whole family, so both sides must log in again.
 */
export class SessionRepository {
  constructor(
    private readonly c: Collections,
    private readonly changes: CredentialChanges,
  ) {}

  async startFamily(userId: string, org: string, now: number): Promise<string> {
    const family = randomBytes(16).toString('hex');
    await this.c.sessions.insertOne({ _id: family, userId, org, createdAt: now });
    return family;
  }

  async issue(
    family: string,
    userId: string,
    org: string,
    now: number,
    ttlMs: number,
  ): Promise<IssuedRefreshToken> {
    const token = `tfr_${randomBytes(32).toString('base64url')}`;
    const expiresAt = now + ttlMs;
    await this.c.refreshTokens.insertOne({
      _id: sha256(token),
      family,
      userId,
      org,
      issuedAt: now,
      expiresAt,
    });
    return { token, family, expiresAt };
  }

  getFamily(family: string): Promise<SessionFamilyDoc | null> {
    return this.c.sessions.findOne({ _id: family });
  }

  /**
   * Spends a refresh token. The claim is an insert keyed by the token's hash, so of two concurrent uses
   * exactly one wins, on MongoDB and on the embedded FerretDB alike (whose conditional updates are not
   * atomic). The loser, like any later use, counts as reuse and ends the session.
   */
  async spend(token: string, now: number): Promise<RefreshOutcome> {
    if (!/^tfr_[\w-]{43}$/.test(token)) return { ok: false, reason: 'unknown' };
    const id = sha256(token);
    const doc = await this.c.refreshTokens.findOne({ _id: id });
    if (!doc) return { ok: false, reason: 'unknown' };
    const family = await this.getFamily(doc.family);
    if (!family || family.revokedAt !== undefined) return { ok: false, reason: 'revoked' };
    try {
      await this.c.spentRefreshTokens.insertOne({ _id: id, at: now });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      await this.revokeFamily(doc.family, now, 'refresh token reused');
      return { ok: false, reason: 'reused', family: doc.family };
    }
    if (doc.expiresAt <= now) return { ok: false, reason: 'expired' };
    return { ok: true, doc };
  }

  /** The family a refresh token belongs to, without spending it (logout). */
  async familyOf(token: string): Promise<string | undefined> {
    if (!/^tfr_[\w-]{43}$/.test(token)) return undefined;
    const doc = await this.c.refreshTokens.findOne({ _id: sha256(token) });
    return doc?.family;
  }

  /** Ends a session everywhere: announced to every process (CredentialChanges) once stored. */
  async revokeFamily(family: string, now: number, reason: string): Promise<void> {
    await this.c.sessions.updateOne(
      { _id: family, revokedAt: { $exists: false } },
      { $set: { revokedAt: now, revokedReason: reason } },
    );
    await this.changes.announce('session', [family]);
  }
}

export interface AuditEntry {
  readonly org: string;
  readonly actor: string;
  readonly action: string;
  readonly resource: string;
  readonly outcome?: 'ok' | 'refused';
  readonly details?: Record<string, unknown>;
  readonly requestId?: string;
}

/** Time-ordered ids: 13 hex digits of milliseconds, then random, so an org's log sorts by _id. */
const auditId = (org: string, at: number): string =>
  `${org}/${at.toString(16).padStart(13, '0')}${randomBytes(6).toString('hex')}`;

export class AuditRepository {
  /** Entries recorded at once go in one insert, not one each. */
  private readonly inserts: GroupInsert<AuditDoc>;

  constructor(
    private readonly c: Collections,
    private readonly now: () => number = Date.now,
  ) {
    this.inserts = new GroupInsert(c.audit);
  }

  /** Resolves once the entry is stored, like an insert of its own. */
  async record(entry: AuditEntry): Promise<void> {
    const at = this.now();
    const doc: AuditDoc = {
      _id: auditId(entry.org, at),
      org: entry.org,
      at: new Date(at),
      actor: entry.actor,
      action: entry.action,
      resource: entry.resource,
      outcome: entry.outcome ?? 'ok',
    };
    if (entry.details !== undefined) doc.details = entry.details;
    if (entry.requestId !== undefined) doc.requestId = entry.requestId;
    // Its id is the time and 48 random bits: taken already means a fault, never a second entry.
    if (!(await this.inserts.insert(doc))) throw new Error(`audit entry ${doc._id} is stored already`);
  }

  /** Newest first; `before` is the _id of the last entry of the previous page. */
  list(org: string, limit: number, before?: string, action?: string): Promise<AuditDoc[]> {
    const idRange =
      before === undefined ? { $gte: `${org}/`, $lt: `${org}0` } : { $gte: `${org}/`, $lt: before };
    const filter = action === undefined ? { _id: idRange, org } : { _id: idRange, org, action };
    return this.c.audit.find(filter).sort({ _id: -1 }).limit(limit).toArray();
  }
}

/** A named secret shared by every API process (the JWT signing key), created once. */
export async function sharedSecret(c: Collections, name: string, given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  await c.settings.updateOne(
    { _id: name },
    { $setOnInsert: { value: randomBytes(32).toString('base64url'), createdAt: new Date() } },
    { upsert: true },
  );
  const doc = await c.settings.findOne({ _id: name });
  if (!doc) throw new Error(`setting ${name} could not be created`);
  return doc.value;
}
