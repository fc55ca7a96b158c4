// Certificate revocations made by other API processes: read every few seconds, so this process forgets the
// certificates and closes the MQTT connections made with them within one interval.
import type { CertificateRepository } from '../inventory/certificates.repo';
import type { Authenticator } from './authenticator';

/** Revocations are read back this far before the last one seen, so a clock a little apart misses none. */
const OVERLAP_MS = 30_000;

export class RevocationWatcher {
  private timer: NodeJS.Timeout | undefined;
  private since: Date;
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly repo: Pick<CertificateRepository, 'revokedSince'>,
    private readonly auth: Pick<Authenticator, 'forgetCertificates'>,
    private readonly intervalMs: number,
    private readonly warn: (err: unknown) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.since = new Date(now() - OVERLAP_MS);
  }

  start(): this {
    const tick = () => {
      this.poll()
        .catch(this.warn)
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, this.intervalMs).unref();
    return this;
  }

  /** Forgets the certificates revoked since the last poll; answers how many were new. */
  async poll(): Promise<number> {
    const startedAt = this.now();
    const revoked = await this.repo.revokedSince(this.since);
    const fresh = revoked.filter((r) => !this.seen.has(r.fingerprint));
    for (const r of fresh) this.seen.set(r.fingerprint, r.revokedAt.getTime());
    this.since = new Date(startedAt - OVERLAP_MS);
    // Only the overlap window needs remembering.
    for (const [fingerprint, at] of this.seen) if (at < this.since.getTime()) this.seen.delete(fingerprint);
    if (fresh.length > 0) this.auth.forgetCertificates(fresh.map((r) => r.fingerprint));
    return fresh.length;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
