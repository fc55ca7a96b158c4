// Covers access tokens: what verifies, and every forgery and expiry that must not.
import { SignJWT } from 'jose';
import { TokenService } from '../../../access/tokens';

const SECRET = 's'.repeat(40);
const claims = { sub: 'ana@example.com', org: 'acme', sid: 'f'.repeat(32) };
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('TokenService', () => {
  let now = Date.UTC(2026, 10, 23, 12, 0, 0);
  const service = () => new TokenService(SECRET, { accessTtlMs: 60_000, issuer: 'twinflow' }, () => now);

  it('verifies its own token and gives back the claims', async () => {
    const { token, expiresAt } = await service().issue(claims);
    expect(expiresAt).toBe(now + 60_000);
    expect(await service().verify(token)).toEqual(claims);
  });

  it('refuses an expired token', async () => {
    const { token } = await service().issue(claims);
    now += 61_000;
    expect(await service().verify(token)).toBeUndefined();
  });

  it('refuses a token signed with another key, alg none, another algorithm, or changed claims', async () => {
    const iat = Math.floor(now / 1000);
    const full = { ...claims, iss: 'twinflow', aud: 'twinflow-api', iat, exp: iat + 60 };
    const other = await new SignJWT(full)
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode('o'.repeat(40)));
    const hs512 = await new SignJWT(full)
      .setProtectedHeader({ alg: 'HS512' })
      .sign(new TextEncoder().encode(SECRET));
    const { token } = await service().issue(claims);
    const [h, , sig] = token.split('.');
    const forged = [
      other,
      hs512,
      `${b64({ alg: 'none' })}.${b64(full)}.`,
      `${h}.${b64({ ...full, org: 'other' })}.${sig}`,
      `${h}.${b64(full)}`,
      'not-a-token',
      '',
      'x'.repeat(10_000),
    ];
    for (const t of forged) expect(await service().verify(t)).toBeUndefined();
  });

  it('refuses a token of another issuer or audience, or without a session', async () => {
    const iat = Math.floor(now / 1000);
    const key = new TextEncoder().encode(SECRET);
    const sign = (c: Record<string, unknown>) =>
      new SignJWT(c).setProtectedHeader({ alg: 'HS256' }).sign(key);
    const base = { ...claims, iss: 'twinflow', aud: 'twinflow-api', iat, exp: iat + 60 };
    expect(await service().verify(await sign(base))).toEqual(claims);
    expect(await service().verify(await sign({ ...base, iss: 'elsewhere' }))).toBeUndefined();
    expect(await service().verify(await sign({ ...base, aud: 'elsewhere' }))).toBeUndefined();
    const { sid: _sid, ...withoutSession } = base;
    expect(await service().verify(await sign(withoutSession))).toBeUndefined();
    expect(await service().verify(await sign({ ...base, sub: { $ne: null } }))).toBeUndefined();
  });

  it('will not start with a short secret', () => {
    expect(() => new TokenService('short')).toThrow(/at least 32/);
  });
});
