// Credential changes: keys revoked, device credential policies changed. The process that makes a change announces
// it here once it is stored, and every process reads the announcements every second (access/credential-feed.ts)
// and forgets what it cached of them: so a process may trust a cached key for minutes, not seconds, and still
// honour a revocation made anywhere within a few seconds.
import { randomUUID } from 'node:crypto';
import type { Collections } from './inventory';
import { duplicatesOnly } from './write-errors';

/** `key`: the SHA-256 of API keys; `policy`: `${org}/${deviceId}` of device credential policies. */
export type CredentialChangeKind = 'key' | 'policy';

export interface CredentialChangeDoc {
  _id: string;
  at: Date;
  kind: CredentialChangeKind;
  ids: string[];
}

/** Announcements are kept this long; a process that has not read them for half of it forgets everything. */
export const CHANGES_KEPT_MS = 86_400_000;

/** Ids in one announcement document (a decommissioned fleet's keys span several). */
const IDS_PER_DOC = 1_000;

/** Attempts at storing an announcement: the store that has just taken the change is rarely gone a moment later. */
const ATTEMPTS = 3;
const RETRY_AFTER_MS = 200;

export class CredentialChanges {
  private lastPruned = 0;

  constructor(
    private readonly c: Pick<Collections, 'credentialChanges'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Stores the announcement of changes already stored; throws only when the store refused it every time. */
  async announce(kind: CredentialChangeKind, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const at = new Date(this.now());
    const docs: CredentialChangeDoc[] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_DOC)
      docs.push({ _id: randomUUID(), at, kind, ids: ids.slice(i, i + IDS_PER_DOC) });
    for (let attempt = 1; ; attempt++) {
      try {
        // Unordered, with fixed `_id`s: a retry after a lost reply inserts only what is missing.
        await this.c.credentialChanges.insertMany(docs, { ordered: false });
        break;
      } catch (err) {
        if (duplicatesOnly(err, docs.length) !== undefined) break;
        if (attempt === ATTEMPTS) throw err;
        await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS * attempt));
      }
    }
    await this.pruneNow().catch(() => undefined);
  }

  /** Announcements made at or after `since`, oldest first. */
  async since(since: Date): Promise<CredentialChangeDoc[]> {
    const docs = await this.c.credentialChanges.find({ at: { $gte: since } }).toArray();
    return docs.sort((a, b) => a.at.getTime() - b.at.getTime());
  }

  /** At most once an hour per process: announcements older than CHANGES_KEPT_MS go. */
  private async pruneNow(): Promise<void> {
    const now = this.now();
    if (now - this.lastPruned < 3_600_000) return;
    this.lastPruned = now;
    await this.c.credentialChanges.deleteMany({ at: { $lt: new Date(now - CHANGES_KEPT_MS) } });
  }
}
