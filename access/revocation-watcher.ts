// Certificate revocations made by other API processes: read every few seconds, so this process forgets the
// certificates and closes the MQTT connections made with them within one interval.
import type { CertificateRepository } from '../inventory/certificates.repo';
import type { Authenticator } from './authenticator';
import { OverlapReader, repeat } from './overlap-reader';

export class RevocationWatcher {
  private loop: { stop(): void } | undefined;
  private readonly reader: OverlapReader<{ fingerprint: string; revokedAt: Date }>;

  constructor(
    repo: Pick<CertificateRepository, 'revokedSince'>,
    private readonly auth: Pick<Authenticator, 'forgetCertificates'>,
    private readonly intervalMs: number,
    private readonly warn: (err: unknown) => void,
    now: () => number = Date.now,
  ) {
    this.reader = new OverlapReader(
      (since) => repo.revokedSince(since),
      (r) => r.fingerprint,
      (r) => r.revokedAt.getTime(),
      now,
    );
  }

  start(): this {
    this.loop = repeat(this.intervalMs, () => this.poll(), this.warn);
    return this;
  }

  /** Forgets the certificates revoked since the last poll; answers how many were new. */
  async poll(): Promise<number> {
    const { fresh } = await this.reader.next();
    if (fresh.length > 0) this.auth.forgetCertificates(fresh.map((r) => r.fingerprint));
    return fresh.length;
  }

  stop(): void {
    this.loop?.stop();
  }
}
