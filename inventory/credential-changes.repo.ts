// Credential changes: keys and device certificates revoked, CAs deleted, device credential policies, users,
// sessions and custom roles changed. The process that makes a change announces it here once it is stored, and
// every process reads the announcements every second (access/credential-feed.ts) and forgets what it cached of
// them: so a process may trust a cached key for minutes, not seconds, and still honour a revocation made
// anywhere within a few seconds.
import { randomUUID } from 'node:crypto';
import type { Collections } from './inventory';
import { duplicatesOnly } from './write-errors';

/**
 * `key`: the SHA-256 of API keys; `policy`: `${org}/${deviceId}` of device credential policies; `user`: users'
 * emails; `session`: session families; `role`: `${org}/${name}` of custom roles; `certificate`: fingerprints of
 * revoked device certificates; `authority`: `${org}/${fingerprint}` of deleted CAs.
 */
export type CredentialChangeKind =
  'key' | 'policy' | 'user' | 'session' | 'role' | 'certificate' | 'authority';

export interface CredentialChangeDoc {
  _id: string;
  at: Date;
  kind: CredentialChangeKind;
  ids: string[];
}

/**
 * Announcements are kept this long; a process that has not read them for half of it forgets every key and policy
 * it cached. Short, because the embedded FerretDB reads the whole collection on every read of the feed.
 */
export const CHANGES_KEPT_MS = 3_600_000;
/** How often one process deletes what is older than that, at most. */
const PRUNE_EVERY_MS = 300_000;

/** Ids in one announcement document (a decommissioned fleet's keys span several). */
const IDS_PER_DOC = 1_000;

/** Attempts before the caller goes on: the store that has just taken the change is rarely gone a moment later. */
const ATTEMPTS = 3;
const RETRY_AFTER_MS = 200;
/** Then the announcement is tried again this often, in the background, until it is stored. */
const BACKGROUND_RETRY_MS = 1_000;

export class CredentialChanges {
  private lastPruned = 0;
  private readonly unannounced: CredentialChangeDoc[] = [];
  private retrying: NodeJS.Timeout | undefined;
  /** Told when an announcement could not be stored at once (it is tried again until it is). */
  warn: (err: unknown, waiting: number) => void = () => undefined;

  constructor(
    private readonly c: Pick<Collections, 'credentialChanges'>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Announces changes already stored. Never throws: the change stands, and an announcement the store refuses
   * now is tried again every second until stored (meanwhile other processes may trust what they cached for as
   * long as their feed stays live: see Authenticator).
   */
  async announce(kind: CredentialChangeKind, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const at = new Date(this.now());
    const docs: CredentialChangeDoc[] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_DOC)
      docs.push({ _id: randomUUID(), at, kind, ids: ids.slice(i, i + IDS_PER_DOC) });
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        await this.store(docs);
        await this.pruneNow().catch(() => undefined);
        return;
      } catch (err) {
        if (attempt === ATTEMPTS) {
          this.unannounced.push(...docs);
          this.warn(err, this.unannounced.length);
          this.retryLater();
        } else await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS * attempt));
      }
    }
  }

  /** Announcements not stored yet. */
  get waiting(): number {
    return this.unannounced.length;
  }

  /** Announcements made at or after `since`, oldest first. */
  async since(since: Date): Promise<CredentialChangeDoc[]> {
    const docs = await this.c.credentialChanges.find({ at: { $gte: since } }).toArray();
    return docs.sort((a, b) => a.at.getTime() - b.at.getTime());
  }

  /** Unordered, with fixed `_id`s: a retry after a lost reply inserts only what is missing. */
  private async store(docs: readonly CredentialChangeDoc[]): Promise<void> {
    try {
      await this.c.credentialChanges.insertMany([...docs], { ordered: false });
    } catch (err) {
      if (duplicatesOnly(err, docs.length) === undefined) throw err;
    }
  }

  private retryLater(): void {
    if (this.retrying) return;
    this.retrying = setTimeout(() => {
      this.retrying = undefined;
      const docs = this.unannounced.splice(0);
      this.store(docs).catch((err: unknown) => {
        this.unannounced.unshift(...docs);
        this.warn(err, this.unannounced.length);
        this.retryLater();
      });
    }, BACKGROUND_RETRY_MS).unref();
  }

  /** At most every PRUNE_EVERY_MS per process, after an announcement: those older than CHANGES_KEPT_MS go. */
  private async pruneNow(): Promise<void> {
    const now = this.now();
    if (now - this.lastPruned < PRUNE_EVERY_MS) return;
    this.lastPruned = now;
    await this.c.credentialChanges.deleteMany({ at: { $lt: new Date(now - CHANGES_KEPT_MS) } });
  }
}
