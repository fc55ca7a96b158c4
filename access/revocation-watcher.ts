// Certificate revocations made by other API processes: read every few seconds, so this process forgets the
// certificates and closes the MQTT connections made with them within one interval.
import type { CertificateRepository } from '../inventory/certificates.repo';
import type { Authenticator } from './authenticator';
import { OverlapFeed } from './overlap-reader';

type Revoked = { fingerprint: string; revokedAt: Date };

export class RevocationWatcher extends OverlapFeed<Revoked> {
  constructor(
    repo: Pick<CertificateRepository, 'revokedSince'>,
    private readonly auth: Pick<Authenticator, 'forgetCertificates'>,
    intervalMs: number,
    warn: (err: unknown) => void,
    now: () => number = Date.now,
  ) {
    super(
      {
        read: (since) => repo.revokedSince(since),
        idOf: (r) => r.fingerprint,
        atOf: (r) => r.revokedAt.getTime(),
      },
      intervalMs,
      warn,
      now,
    );
  }

  /** Forgets the certificates revoked since the last poll. */
  protected take(fresh: readonly Revoked[]): void {
    if (fresh.length > 0) this.auth.forgetCertificates(fresh.map((r) => r.fingerprint));
  }
}
