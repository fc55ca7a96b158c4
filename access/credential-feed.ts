// The credential feed: every second, the changes any process announced (CredentialChanges: keys and device
// certificates revoked, CAs deleted, device credential policies, users, sessions and custom roles changed),
// forgotten here too, with the MQTT connections made with revoked keys and certificates closed. Each complete
// read tells the authenticator, which trusts cached keys, certificates and policies for minutes only while reads
// keep coming.
import { CHANGES_KEPT_MS, type CredentialChangeDoc } from '../inventory/credential-changes.repo';
import type { CredentialChanges } from '../inventory/credential-changes.repo';
import type { Authenticator } from './authenticator';
import { OverlapFeed } from './overlap-reader';

/** How often the feed is read (ms): the usual delay before a change made elsewhere is honoured here. */
export const FEED_INTERVAL_MS = 1_000;

type FeedAuthenticator = Pick<
  Authenticator,
  | 'forget'
  | 'forgetCertificates'
  | 'forgetAllCertificates'
  | 'forgetPolicy'
  | 'forgetUser'
  | 'forgetSession'
  | 'forgetRole'
  | 'forgetAllCredentials'
  | 'feedRead'
>;

export class CredentialFeed extends OverlapFeed<CredentialChangeDoc> {
  private lastReadAt: number | undefined;

  constructor(
    changes: Pick<CredentialChanges, 'since'>,
    private readonly auth: FeedAuthenticator,
    warn: (err: unknown) => void,
    intervalMs = FEED_INTERVAL_MS,
    now: () => number = Date.now,
  ) {
    super(
      { read: (since) => changes.since(since), idOf: (c) => c._id, atOf: (c) => c.at.getTime() },
      intervalMs,
      warn,
      now,
    );
  }

  /** Forgets what was announced since the last read, then tells the authenticator the feed is current. */
  protected take(fresh: readonly CredentialChangeDoc[], startedAt: number): void {
    // After so long a silence the oldest announcements may be gone: nothing cached before it is trusted.
    if (this.lastReadAt !== undefined && startedAt - this.lastReadAt > CHANGES_KEPT_MS / 2)
      this.auth.forgetAllCredentials();
    this.lastReadAt = startedAt;
    for (const change of fresh) this.forgetChanged(change);
    this.auth.feedRead(startedAt);
  }

  private forgetChanged({ kind, ids }: CredentialChangeDoc): void {
    if (kind === 'key') {
      this.auth.forget(ids);
      return;
    }
    if (kind === 'certificate') {
      this.auth.forgetCertificates(ids);
      return;
    }
    if (kind === 'authority') {
      this.auth.forgetAllCertificates(ids);
      return;
    }
    for (const id of ids) {
      if (kind === 'user') this.auth.forgetUser(id);
      else if (kind === 'session') this.auth.forgetSession(id);
      else if (kind === 'policy' || kind === 'role') {
        // `${org}/${name}`: an organization's id has no slash.
        const slash = id.indexOf('/');
        if (slash <= 0) continue;
        const [org, rest] = [id.slice(0, slash), id.slice(slash + 1)];
        if (kind === 'policy') this.auth.forgetPolicy(org, rest);
        else this.auth.forgetRole(org, rest);
      }
      // A kind this version does not know (written by a newer one) names nothing cached here.
    }
  }
}
