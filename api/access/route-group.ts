// Routes that declare what they need. Every route is added through a RouteGroup with its access rule, and
// the app refuses to start if Hono holds a route no group declared (see assertEveryRouteDeclared).
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { ZodTypeAny } from 'zod';
import type { AppEnv, Principal } from '../context';
import { ApiError } from '../errors';
import type { Action } from '../../access/permissions';

export type Access =
  /** No credential (health, login, the OpenAPI description). */
  | { readonly kind: 'public' }
  /** The south API: a device's own key, or a user or service key holding devices:write in its organization. */
  | { readonly kind: 'device' }
  /** Any signed-in user or service key (their own password, who am I). */
  | { readonly kind: 'signed-in' }
  | { readonly kind: 'action'; readonly action: Action };

export const PUBLIC: Access = { kind: 'public' };
export const DEVICE: Access = { kind: 'device' };
export const SIGNED_IN: Access = { kind: 'signed-in' };
export const can = (action: Action): Access => ({ kind: 'action', action });

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteDoc {
  readonly summary: string;
  readonly tag: string;
  readonly body?: ZodTypeAny;
  readonly query?: ZodTypeAny;
  /** Statuses this route answers besides the common errors (first is the success). */
  readonly responses?: readonly number[];
}

export interface RouteEntry {
  readonly method: Method;
  /** Full path in Hono syntax: `/north/v1/devices/:deviceId`. */
  readonly path: string;
  readonly access: Access;
  readonly doc: RouteDoc;
}

type Handler = (c: Context<AppEnv>) => Response | Promise<Response>;

const joinPath = (base: string, path: string): string => (path === '/' ? base : `${base}${path}`) || '/';

export class RouteGroup {
  readonly app = new Hono<AppEnv>();
  readonly entries: RouteEntry[] = [];

  constructor(readonly base: string) {}

  on(
    method: Method | readonly Method[],
    path: string,
    access: Access,
    doc: RouteDoc,
    handler: Handler,
  ): this {
    if (!access || !['public', 'device', 'signed-in', 'action'].includes(access.kind)) {
      throw new Error(`route ${String(method)} ${this.base}${path} declares no access rule`);
    }
    const methods = typeof method === 'string' ? [method] : [...method];
    for (const m of methods) this.entries.push({ method: m, path: joinPath(this.base, path), access, doc });
    this.app.on(methods, path, guard(access), handler);
    return this;
  }

  get(path: string, access: Access, doc: RouteDoc, handler: Handler): this {
    return this.on('GET', path, access, doc, handler);
  }
  post(path: string, access: Access, doc: RouteDoc, handler: Handler): this {
    return this.on('POST', path, access, doc, handler);
  }
  put(path: string, access: Access, doc: RouteDoc, handler: Handler): this {
    return this.on('PUT', path, access, doc, handler);
  }
  patch(path: string, access: Access, doc: RouteDoc, handler: Handler): this {
    return this.on('PATCH', path, access, doc, handler);
  }
  delete(path: string, access: Access, doc: RouteDoc, handler: Handler): this {
    return this.on('DELETE', path, access, doc, handler);
  }
}

/** Throws unless every route Hono holds was declared through a RouteGroup (middleware excepted). */
export function assertEveryRouteDeclared(app: Hono<AppEnv>, entries: readonly RouteEntry[]): void {
  const declared = new Set(entries.map((e) => `${e.method} ${e.path}`));
  const undeclared = app.routes
    .filter((r) => r.method !== 'ALL')
    .map((r) => `${r.method} ${r.path}`)
    .filter((key) => !declared.has(key));
  if (undeclared.length > 0) {
    throw new Error(`routes mounted without an access rule: ${[...new Set(undeclared)].join(', ')}`);
  }
}

const BEARER = /^Bearer ([\w.~+/-]+=*)$/;

/** Authenticates the request's credential, or throws 401. */
async function authenticate(c: Context<AppEnv>, allowQueryKey: boolean): Promise<Principal> {
  const auth = c.get('services').auth;
  const authorization = c.req.header('authorization');
  const key = c.req.header('x-apikey') ?? (allowQueryKey ? c.req.query('X-ApiKey') : undefined);
  if (authorization !== undefined && key !== undefined) {
    throw new ApiError('UNAUTHENTICATED', 'send one credential: X-ApiKey or Authorization, not both');
  }
  if (authorization !== undefined) {
    const match = BEARER.exec(authorization);
    if (!match?.[1])
      throw new ApiError('UNAUTHENTICATED', 'the Authorization header must be "Bearer <token>"');
    const result = await auth.authenticateBearer(match[1]);
    if (!result.ok) throw new ApiError('UNAUTHENTICATED', 'invalid, expired or revoked access token');
    return result.principal;
  }
  if (key === undefined) {
    throw new ApiError(
      'UNAUTHENTICATED',
      'missing credential: send X-ApiKey or Authorization: Bearer <token>',
    );
  }
  const result = await auth.authenticateKey(key);
  if (!result.ok) throw new ApiError('UNAUTHENTICATED', 'invalid or revoked API key');
  return result.principal;
}

function guard(access: Access): MiddlewareHandler<AppEnv> {
  if (access.kind === 'public') return async (_c, next) => next();
  return async (c, next) => {
    const principal = await authenticate(c, access.kind === 'device');
    c.set('principal', principal);
    if (access.kind === 'device') {
      const deviceId = c.req.param('deviceId');
      if (principal.kind === 'device') {
        if (deviceId !== undefined && principal.deviceId !== deviceId) {
          throw new ApiError('PERMISSION_DENIED', 'this key belongs to another device');
        }
      } else if (!principal.permissions.has('devices:write')) {
        throw new ApiError(
          'PERMISSION_DENIED',
          `role ${principal.role} may not act for a device (devices:write)`,
        );
      }
    } else if (principal.kind === 'device') {
      throw new ApiError('PERMISSION_DENIED', 'a device key works only on the south API');
    } else if (access.kind === 'action' && !principal.permissions.has(access.action)) {
      throw new ApiError('PERMISSION_DENIED', `role ${principal.role} lacks ${access.action}`);
    }
    await next();
  };
}
