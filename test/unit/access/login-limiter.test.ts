// Covers login throttling: failures per account, attempts per source, windows that end.
import { LoginLimiter } from '../../../access/login-limiter';

const limits = {
  failuresPerAccount: 3,
  accountWindowMs: 60_000,
  attemptsPerSource: 5,
  sourceWindowMs: 10_000,
};

describe('LoginLimiter', () => {
  let now = 0;
  const limiter = () => new LoginLimiter(limits, () => now);
  beforeEach(() => {
    now = 1_000_000;
  });

  it('locks an account after its failures until the window ends', () => {
    const l = limiter();
    for (let i = 0; i < 3; i++) {
      expect(l.admit('ana', `10.0.0.${i}`).ok).toBe(true);
      l.failed('ana');
    }
    const refused = l.admit('ana', '10.0.0.9');
    expect(refused).toEqual({ ok: false, retryAfterMs: 60_000 });
    expect(l.admit('bob', '10.0.0.9').ok).toBe(true);
    now += 60_000;
    expect(l.admit('ana', '10.0.0.9').ok).toBe(true);
  });

  it('forgets failures after a success', () => {
    const l = limiter();
    l.failed('ana');
    l.failed('ana');
    l.succeeded('ana');
    l.failed('ana');
    expect(l.admit('ana', 's').ok).toBe(true);
  });

  it('limits attempts from one source across accounts', () => {
    const l = limiter();
    for (let i = 0; i < 5; i++) expect(l.admit(`user${i}`, 'bot').ok).toBe(true);
    const refused = l.admit('user9', 'bot');
    expect(refused.ok).toBe(false);
    expect(l.admit('user9', 'human').ok).toBe(true);
    now += 10_000;
    expect(l.admit('user9', 'bot').ok).toBe(true);
  });
});
