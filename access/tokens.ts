// Access tokens: short-lived HS256 JWTs (jose). Only HS256 with the deployment's key is accepted, so
// `alg: none`, another algorithm or another key fails verification.
import { errors, jwtVerify, SignJWT } from 'jose';

export interface AccessClaims {
  /** The user's e-mail address. */
  readonly sub: string;
  readonly org: string;
  /** The session (refresh-token family) the token came from; logout ends it. */
  readonly sid: string;
}

export interface TokenServiceOptions {
  readonly accessTtlMs: number;
  readonly issuer: string;
}

const DEFAULT_TOKEN_OPTIONS: TokenServiceOptions = { accessTtlMs: 15 * 60_000, issuer: 'twinflow' };

const ALGORITHM = 'HS256';
/** A JWT is three base64url parts; anything longer than this is not one of ours. */
const MAX_TOKEN_LENGTH = 4_096;

export class TokenService {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    readonly options: TokenServiceOptions = DEFAULT_TOKEN_OPTIONS,
    private readonly now: () => number = Date.now,
  ) {
    if (secret.length < 32) throw new Error('the JWT secret must be at least 32 characters');
    this.key = new TextEncoder().encode(secret);
  }

  async issue(claims: AccessClaims): Promise<{ token: string; expiresAt: number }> {
    const issuedAt = Math.floor(this.now() / 1000);
    const expiresAt = issuedAt * 1000 + this.options.accessTtlMs;
    const token = await new SignJWT({ org: claims.org, sid: claims.sid })
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setSubject(claims.sub)
      .setIssuer(this.options.issuer)
      .setAudience('twinflow-api')
      .setIssuedAt(issuedAt)
      .setExpirationTime(Math.floor(expiresAt / 1000))
      .sign(this.key);
    return { token, expiresAt };
  }

  /** The claims of a valid token, or undefined for anything else (malformed, forged, expired). */
  async verify(token: string): Promise<AccessClaims | undefined> {
    if (token.length > MAX_TOKEN_LENGTH) return undefined;
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: [ALGORITHM],
        issuer: this.options.issuer,
        audience: 'twinflow-api',
        currentDate: new Date(this.now()),
        requiredClaims: ['sub', 'exp', 'iat'],
      });
      const { sub, org, sid } = payload as { sub?: unknown; org?: unknown; sid?: unknown };
      if (typeof sub !== 'string' || typeof org !== 'string' || typeof sid !== 'string') return undefined;
      return { sub, org, sid };
    } catch (err) {
      if (err instanceof errors.JOSEError || err instanceof TypeError) return undefined;
      throw err;
    }
  }
}
