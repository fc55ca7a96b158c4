// Login throttling: failed attempts per account and attempts per source address, in fixed windows held in
// memory (per API process). Over the limit, login answers 429 with Retry-After before checking the password.

export interface LoginLimits {
  /** Failed logins one account may have per window before it is refused until the window ends. */
  readonly failuresPerAccount: number;
  readonly accountWindowMs: number;
  /** Login attempts (good or bad) one source address may make per window. */
  readonly attemptsPerSource: number;
  readonly sourceWindowMs: number;
}

const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  failuresPerAccount: 10,
  accountWindowMs: 15 * 60_000,
  attemptsPerSource: 60,
  sourceWindowMs: 60_000,
};

interface Window {
  count: number;
  endsAt: number;
}

const MAX_TRACKED = 100_000;

export class LoginLimiter {
  private readonly accounts = new Map<string, Window>();
  private readonly sources = new Map<string, Window>();

  constructor(
    private readonly limits: LoginLimits = DEFAULT_LOGIN_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts an attempt from `source` for `account`; answers how long to wait (ms) if it is refused. */
  admit(account: string, source: string): { ok: true } | { ok: false; retryAfterMs: number } {
    const now = this.now();
    const src = this.bump(this.sources, source, this.limits.sourceWindowMs, now);
    if (src.count > this.limits.attemptsPerSource) return { ok: false, retryAfterMs: src.endsAt - now };
    const acc = this.accounts.get(account);
    if (acc && acc.endsAt > now && acc.count >= this.limits.failuresPerAccount) {
      return { ok: false, retryAfterMs: acc.endsAt - now };
    }
    return { ok: true };
  }

  failed(account: string): void {
    this.bump(this.accounts, account, this.limits.accountWindowMs, this.now());
  }

  succeeded(account: string): void {
    this.accounts.delete(account);
  }

  private bump(map: Map<string, Window>, key: string, windowMs: number, now: number): Window {
    let w = map.get(key);
    if (!w || w.endsAt <= now) {
      if (map.size >= MAX_TRACKED) this.prune(map, now);
      w = { count: 0, endsAt: now + windowMs };
      map.set(key, w);
    }
    w.count += 1;
    return w;
  }

  private prune(map: Map<string, Window>, now: number): void {
    for (const [k, w] of map) if (w.endsAt <= now) map.delete(k);
    if (map.size >= MAX_TRACKED) map.clear();
  }
}
