// Users log in with e-mail and password for a short-lived access token (JWT) and a rotating refresh token.
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import { z } from 'zod';
import {
  MAX_PASSWORD_LENGTH,
  MIN_PASSWORD_LENGTH,
  hashPassword,
  verifyPassword,
} from '../../access/passwords';
import { PUBLIC, RouteGroup, SIGNED_IN } from '../access/route-group';
import { audit, recordAudit } from '../audit';
import type { AppEnv } from '../context';
import { ApiError } from '../errors';
import type { Services } from '../services';

export const authRoutes = new RouteGroup('/north/v1/auth');
const tag = 'Authentication';

export const emailSchema = z.string().trim().toLowerCase().email().max(254);
const passwordSchema = z.string().min(1).max(MAX_PASSWORD_LENGTH);
export const newPasswordSchema = z
  .string()
  .min(MIN_PASSWORD_LENGTH, `a password has at least ${MIN_PASSWORD_LENGTH} characters`)
  .max(MAX_PASSWORD_LENGTH);

const loginSchema = z.object({ email: emailSchema, password: passwordSchema }).strict();
const refreshSchema = z.object({ refreshToken: z.string().min(1).max(256) }).strict();
const tokensSchema = z.object({
  tokenType: z.literal('Bearer'),
  accessToken: z.string(),
  expiresIn: z.number().int().describe('seconds'),
  refreshToken: z.string(),
  refreshExpiresAt: z.string().datetime(),
  user: z.object({ email: z.string(), org: z.string(), role: z.string() }),
});
const whoAmISchema = z.object({
  kind: z.enum(['user', 'service', 'device']),
  id: z.string(),
  org: z.string(),
  role: z.string(),
  platformAdmin: z.boolean(),
  permissions: z.array(z.string()),
});
const passwordChangeSchema = z
  .object({ currentPassword: passwordSchema, newPassword: newPasswordSchema })
  .strict();

function sourceOf(c: Context<AppEnv>): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function issueTokens(
  services: Services,
  user: { _id: string; org: string; role: string },
  family: string,
) {
  const now = services.now();
  const access = await services.auth.tokens.issue({ sub: user._id, org: user.org, sid: family });
  const refresh = await services.sessions.issue(family, user._id, user.org, now, services.refreshTtlMs);
  return {
    tokenType: 'Bearer',
    accessToken: access.token,
    expiresIn: Math.ceil((access.expiresAt - now) / 1000),
    refreshToken: refresh.token,
    refreshExpiresAt: new Date(refresh.expiresAt).toISOString(),
    user: { email: user._id, org: user.org, role: user.role },
  };
}

authRoutes.post(
  '/login',
  PUBLIC,
  {
    summary: 'Log in: an access token and a refresh token',
    tag,
    body: loginSchema,
    response: tokensSchema,
    responses: [200, 401, 429],
  },
  async (c, { body: { email, password } }) => {
    const services = c.get('services');
    const admitted = services.loginLimiter.admit(email, sourceOf(c));
    if (!admitted.ok) {
      c.header('Retry-After', String(Math.max(1, Math.ceil(admitted.retryAfterMs / 1000))));
      throw new ApiError('RESOURCE_EXHAUSTED', 'too many login attempts; retry later');
    }
    const user = await services.users.get(email);
    const good = await verifyPassword(user?.passwordHash, password);
    if (!user || !good || user.disabled) {
      services.loginLimiter.failed(email);
      if (user) {
        await recordAudit(c, {
          org: user.org,
          actor: `user:${user._id}`,
          action: 'auth.login',
          resource: `users/${user._id}`,
          outcome: 'refused',
        });
      }
      throw new ApiError('UNAUTHENTICATED', 'invalid e-mail or password');
    }
    services.loginLimiter.succeeded(email);
    const family = await services.sessions.startFamily(user._id, user.org, services.now());
    await recordAudit(c, {
      org: user.org,
      actor: `user:${user._id}`,
      action: 'auth.login',
      resource: `users/${user._id}`,
    });
    return c.json(await issueTokens(services, user, family));
  },
);

authRoutes.post(
  '/refresh',
  PUBLIC,
  {
    summary: 'Trade a refresh token for new tokens (each refresh token works once)',
    tag,
    body: refreshSchema,
    response: tokensSchema,
    responses: [200, 401],
  },
  async (c, { body: { refreshToken } }) => {
    const services = c.get('services');
    const spent = await services.sessions.spend(refreshToken, services.now());
    if (!spent.ok) {
      if (spent.reason === 'reused') {
        services.auth.forgetSession(spent.family);
        c.get('logger').warn('a refresh token was used twice; its session is revoked');
      }
      throw new ApiError('UNAUTHENTICATED', 'invalid, expired or revoked refresh token');
    }
    const user = await services.users.get(spent.doc.userId);
    const session = await services.sessions.getFamily(spent.doc.family);
    if (
      !user ||
      user.disabled ||
      user.org !== spent.doc.org ||
      !session ||
      session.createdAt < user.sessionsValidAfter
    ) {
      throw new ApiError('UNAUTHENTICATED', 'invalid, expired or revoked refresh token');
    }
    return c.json(await issueTokens(services, user, spent.doc.family));
  },
);

authRoutes.post(
  '/logout',
  PUBLIC,
  {
    summary: 'End the session a refresh token belongs to (its access tokens stop working too)',
    tag,
    body: refreshSchema,
    responses: [204],
  },
  async (c, { body: { refreshToken } }) => {
    const services = c.get('services');
    const family = await services.sessions.familyOf(refreshToken);
    if (family !== undefined) {
      await services.sessions.revokeFamily(family, services.now(), 'logout');
      services.auth.forgetSession(family);
    }
    // The same answer whether or not the token was known: logout reveals nothing.
    return c.body(null, 204);
  },
);

authRoutes.post(
  '/password',
  SIGNED_IN,
  {
    summary: 'Change your own password (ends every session: log in again)',
    tag,
    body: passwordChangeSchema,
    responses: [204, 401],
  },
  async (c, { body }) => {
    const services = c.get('services');
    const principal = c.get('principal');
    if (principal.kind !== 'user') throw new ApiError('PERMISSION_DENIED', 'only users have passwords');
    const user = await services.users.get(principal.id);
    if (!user || !(await verifyPassword(user.passwordHash, body.currentPassword))) {
      throw new ApiError('UNAUTHENTICATED', 'the current password is wrong');
    }
    const now = services.now();
    await services.users.update(user._id, {
      passwordHash: await hashPassword(body.newPassword),
      sessionsValidAfter: now + 1,
      updatedAt: new Date(now),
    });
    services.auth.forgetUser(user._id);
    await audit(c, 'user.password', `users/${user._id}`);
    return c.body(null, 204);
  },
);

export const meRoutes = new RouteGroup('/north/v1/me');

meRoutes.get(
  '/',
  SIGNED_IN,
  { summary: 'Who you are: organization, role and permissions', tag, response: whoAmISchema },
  (c) => {
    const p = c.get('principal');
    return c.json({
      kind: p.kind,
      id: p.id,
      org: p.org,
      role: p.role,
      platformAdmin: p.platformAdmin,
      permissions: [...p.permissions].sort(),
    });
  },
);
