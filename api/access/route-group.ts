// Routes declared once. Every route is added through a RouteGroup with its access rule, summary and input
// schemas; that one declaration guards the route, validates its path, query and body before the handler runs
// (the handler gets them typed), and writes the OpenAPI document. The app refuses to start if Hono holds a
// route no group declared (see assertEveryRouteDeclared).
//
// Why not @hono/zod-openapi: its current line (1.x) has zod ^4 as a peer while TwinFlow is on zod 3.25, so
// every schema would move to zod 4 and its `.openapi()` builders; its validator hook answers in its own error
// shape and reads the body itself, so the error envelope, the guard-before-body order, the strict query rules
// (a parameter given twice or unknown is refused), the content-type checks and the table that drives the
// security and fuzz tests would all be rebuilt around it. This class does the same job in a few lines more.
import { TLSSocket } from 'node:tls';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { z, ZodTypeAny } from 'zod';
import type { AppEnv, Principal } from '../context';
import { ApiError } from '../errors';
import type { Action } from '../../access/permissions';
import { type PathParam, readJson, readQuery } from '../validation';

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

/** Path parameters a route checks before anything else (an id that cannot exist is simply not found). */
export type PathParams = Readonly<Record<string, PathParam<unknown>>>;

type Schema = ZodTypeAny | undefined;
type Params = PathParams | undefined;

export interface RouteDoc<B extends Schema = Schema, Q extends Schema = Schema, P extends Params = Params> {
  readonly summary: string;
  readonly tag: string;
  /** The JSON body: refused with 415/400 unless it is JSON of this shape. */
  readonly body?: B;
  /** The query string: a parameter given twice is refused; the schema is strict so unknown ones are too. */
  readonly query?: Q;
  readonly params?: P;
  /** A body the handler reads itself (not JSON): its media range, for the OpenAPI document. */
  readonly rawBody?: string;
  /** The success response's body, for the OpenAPI document. */
  readonly response?: ZodTypeAny;
  /** A success response that is not JSON (a live stream): its media type, for the OpenAPI document. */
  readonly rawResponse?: string;
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

type Parsed<S> = S extends ZodTypeAny ? z.output<S> : undefined;
type ParsedParams<P> = P extends PathParams
  ? { readonly [K in keyof P]: P[K] extends PathParam<infer T> ? T : never }
  : Record<string, never>;

/** What a route's handler receives, already validated against its declaration. */
export interface RouteInput<B extends Schema, Q extends Schema, P extends Params> {
  readonly body: Parsed<B>;
  readonly query: Parsed<Q>;
  readonly params: ParsedParams<P>;
}

export type RouteHandler<
  B extends Schema = undefined,
  Q extends Schema = undefined,
  P extends Params = undefined,
> = (c: Context<AppEnv>, input: RouteInput<B, Q, P>) => Response | Promise<Response>;

const joinPath = (base: string, path: string): string => (path === '/' ? base : `${base}${path}`) || '/';

/** Path parameters, then the query, then the body: cheap refusals first, the body read last. */
async function readInput(c: Context<AppEnv>, doc: RouteDoc): Promise<RouteInput<Schema, Schema, Params>> {
  const params: Record<string, unknown> = {};
  for (const [name, param] of Object.entries(doc.params ?? {})) params[name] = param.parse(c.req.param(name));
  const query: unknown = doc.query ? readQuery(c, doc.query) : undefined;
  const body: unknown = doc.body ? await readJson(c, doc.body) : undefined;
  return { params, query, body } as RouteInput<Schema, Schema, Params>;
}

export class RouteGroup {
  readonly app = new Hono<AppEnv>();
  readonly entries: RouteEntry[] = [];

  constructor(readonly base: string) {}

  on<B extends Schema = undefined, Q extends Schema = undefined, P extends Params = undefined>(
    method: Method | readonly Method[],
    path: string,
    access: Access,
    doc: RouteDoc<B, Q, P>,
    handler: RouteHandler<B, Q, P>,
  ): this {
    if (!access || !['public', 'device', 'signed-in', 'action'].includes(access.kind)) {
      throw new Error(`route ${String(method)} ${this.base}${path} declares no access rule`);
    }
    const full = joinPath(this.base, path);
    const inPath = new Set([...full.matchAll(/:(\w+)/g)].map((m) => m[1]));
    for (const name of Object.keys(doc.params ?? {}))
      if (!inPath.has(name)) throw new Error(`route ${full} declares a parameter ${name} it does not have`);
    const methods = typeof method === 'string' ? [method] : [...method];
    for (const m of methods) this.entries.push({ method: m, path: full, access, doc });
    // The guard runs first: no body is read for a caller who may not use the route.
    this.app.on(methods, path, guard(access), async (c) =>
      handler(c, (await readInput(c, doc)) as RouteInput<B, Q, P>),
    );
    return this;
  }

  get<B extends Schema = undefined, Q extends Schema = undefined, P extends Params = undefined>(
    path: string,
    access: Access,
    doc: RouteDoc<B, Q, P>,
    handler: RouteHandler<B, Q, P>,
  ): this {
    return this.on('GET', path, access, doc, handler);
  }
  post<B extends Schema = undefined, Q extends Schema = undefined, P extends Params = undefined>(
    path: string,
    access: Access,
    doc: RouteDoc<B, Q, P>,
    handler: RouteHandler<B, Q, P>,
  ): this {
    return this.on('POST', path, access, doc, handler);
  }
  put<B extends Schema = undefined, Q extends Schema = undefined, P extends Params = undefined>(
    path: string,
    access: Access,
    doc: RouteDoc<B, Q, P>,
    handler: RouteHandler<B, Q, P>,
  ): this {
    return this.on('PUT', path, access, doc, handler);
  }
  patch<B extends Schema = undefined, Q extends Schema = undefined, P extends Params = undefined>(
    path: string,
    access: Access,
    doc: RouteDoc<B, Q, P>,
    handler: RouteHandler<B, Q, P>,
  ): this {
    return this.on('PATCH', path, access, doc, handler);
  }
  delete<B extends Schema = undefined, Q extends Schema = undefined, P extends Params = undefined>(
    path: string,
    access: Access,
    doc: RouteDoc<B, Q, P>,
    handler: RouteHandler<B, Q, P>,
  ): this {
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

/** The client certificate (DER) of an HTTPS request, when the client presented one. */
function clientCertificateOf(c: Context<AppEnv>): Buffer | undefined {
  const socket = (c.env as { incoming?: { socket?: unknown } } | undefined)?.incoming?.socket;
  if (!(socket instanceof TLSSocket)) return undefined;
  const peer = socket.getPeerCertificate();
  return peer && Buffer.isBuffer(peer.raw) && peer.raw.length > 0 ? peer.raw : undefined;
}

/**
 * Authenticates the request's credential, or throws 401. On the south API (`device`) a device without a key
 * header may present its client certificate over HTTPS instead.
 */
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
  const certificate = key === undefined && allowQueryKey ? clientCertificateOf(c) : undefined;
  if (certificate) {
    const result = await auth.authenticateCertificate(certificate);
    if (!result.ok)
      throw new ApiError('UNAUTHENTICATED', 'the client certificate is unknown, expired or revoked');
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
          throw new ApiError('PERMISSION_DENIED', 'this credential belongs to another device');
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
