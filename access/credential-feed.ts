// The credential feed: every second, the changes any process announced (CredentialChanges: keys revoked, device
// credential policies, users, sessions and custom roles changed), forgotten here too, with the MQTT connections
// made with revoked keys closed. Each complete read tells the authenticator, which trusts cached keys and
// policies for minutes only while reads keep coming.
import { CHANGES_KEPT_MS, type CredentialChangeDoc } from '../inventory/credential-changes.repo';
import type { CredentialChanges } from '../inventory/credential-changes.repo';
import type { Authenticator } from './authenticator';
import { OverlapReader, repeat } from './overlap-reader';

/** How often the feed is read (ms): the usual delay before a change made elsewhere is honoured here. */
export const FEED_INTERVAL_MS = 1_000;

type FeedAuthenticator = Pick<
  Authenticator,
  'forget' | 'forgetPolicy' | 'forgetUser' | 'forgetSession' | 'forgetRole' | 'forgetAllKeys' | 'feedRead'
>;

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

  /** Forgets what was announced since the last read; answers how many announcements were new. */
  async poll(): Promise<number> {
    const { fresh, startedAt } = await this.reader.next();
    // After so long a silence the oldest announcements may be gone: nothing cached before it is trusted.
    if (this.lastReadAt !== undefined && startedAt - this.lastReadAt > CHANGES_KEPT_MS / 2)
      this.auth.forgetAllKeys();
    this.lastReadAt = startedAt;
    for (const change of fresh) this.forgetChanged(change);
    this.auth.feedRead(startedAt);
    return fresh.length;
  }

  private forgetChanged({ kind, ids }: CredentialChangeDoc): void {
    if (kind === 'key') {
      this.auth.forget(ids);
      return;
    }
    for (const id of ids) {
      if (kind === 'user') this.auth.forgetUser(id);
      else if (kind === 'session') this.auth.forgetSession(id);
      else {
        // `${org}/${name}`: an organization's id has no slash.
        const slash = id.indexOf('/');
        if (slash <= 0) continue;
        const [org, rest] = [id.slice(0, slash), id.slice(slash + 1)];
        if (kind === 'policy') this.auth.forgetPolicy(org, rest);
        else this.auth.forgetRole(org, rest);
      }
    }
  }

  stop(): void {
    this.loop?.stop();
  }
}
