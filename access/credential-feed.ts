// The credential feed: every second, the changes any process announced (CredentialChanges: keys and device
// certificates revoked, CAs deleted, device credential policies, users, sessions and custom roles changed),
// forgotten here too, with the MQTT connections made with revoked keys and certificates closed. Each complete
// read tells the authenticator, which trusts cached keys, certificates and policies for minutes only while reads
// keep coming.
import { CHANGES_KEPT_MS, type CredentialChangeDoc } from '../inventory/credential-changes.repo';
import type { CredentialChanges } from '../inventory/credential-changes.repo';
import type { Authenticator } from './authenticator';
import { OverlapReader, repeat } from './overlap-reader';

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

/** `${org}/${name}` ids split in two (an organization's id has no slash); malformed ones left out. */
function inOrg(ids: readonly string[]): [string, string][] {
  return ids.flatMap((id) => {
    const slash = id.indexOf('/');
    return slash > 0 ? [[id.slice(0, slash), id.slice(slash + 1)] as [string, string]] : [];
  });
}

export class CredentialFeed {
  private loop: { stop(): void } | undefined;
  private readonly reader: OverlapReader<CredentialChangeDoc>;
  private lastReadAt: number | undefined;

  constructor(
    changes: Pick<CredentialChanges, 'since'>,
    private readonly auth: FeedAuthenticator,
    private readonly warn: (err: unknown) => void,
    private readonly intervalMs = FEED_INTERVAL_MS,
    now: () => number = Date.now,
  ) {
    this.reader = new OverlapReader(
      (since) => changes.since(since),
      (c) => c._id,
      (c) => c.at.getTime(),
      now,
    );
  }

  start(): this {
    this.loop = repeat(this.intervalMs, () => this.poll(), this.warn);
    return this;
  }

  stop(): void {
    this.loop?.stop();
  }

  /**
   * Forgets what was announced since the last read, then tells the authenticator the feed is current; answers
   * how many announcements were new.
   */
  async poll(): Promise<number> {
    const { fresh, startedAt } = await this.reader.next();
    // After so long a silence the oldest announcements may be gone: nothing cached before it is trusted.
    if (this.lastReadAt !== undefined && startedAt - this.lastReadAt > CHANGES_KEPT_MS / 2)
      this.auth.forgetAllCredentials();
    this.lastReadAt = startedAt;
    for (const change of fresh) this.forgetChanged(change);
    this.auth.feedRead(startedAt);
    return fresh.length;
  }

  private forgetChanged({ kind, ids }: CredentialChangeDoc): void {
    switch (kind) {
      case 'key':
        return this.auth.forget(ids);
      case 'certificate':
        return this.auth.forgetCertificates(ids);
      case 'authority':
        return this.auth.forgetAllCertificates(ids);
      case 'user':
        return ids.forEach((id) => this.auth.forgetUser(id));
      case 'session':
        return ids.forEach((id) => this.auth.forgetSession(id));
      case 'policy':
        return inOrg(ids).forEach(([org, deviceId]) => this.auth.forgetPolicy(org, deviceId));
      case 'role':
        return inOrg(ids).forEach(([org, name]) => this.auth.forgetRole(org, name));
      default:
      // A kind this version does not know (written by a newer one) names nothing cached here.
    }
  }
}
