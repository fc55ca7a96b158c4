// Builds the HTTP API (Hono): middleware, the north and south faces, health, and one error handler.
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import type { AppEnv } from './context';
import { RefusedError } from '../twins/outcomes';
import { ApiError, errorBody } from './errors';
import { incomingOf } from './validation';
import { assertEveryRouteDeclared, PUBLIC, RouteGroup, type RouteEntry } from './access/route-group';
import { docsRoutes, OPENAPI_PATH } from './docs.routes';
import { healthRoutes } from './health.routes';
import { alarmsRoutes, deviceAlarmsRoutes, deviceEventsRoutes } from './north/alarms.routes';
import { eventsRoutes } from './north/events.routes';
import { authRoutes, meRoutes } from './north/auth.routes';
import { authoritiesRoutes, deviceCertificatesRoutes } from './north/certificates.routes';
import { desiredRoutes } from './north/desired.routes';
import { devicesRoutes } from './north/devices.routes';
import { forwardersRoutes } from './north/forwarders.routes';
import { functionsRoutes } from './north/functions.routes';
import { jobSchedulesRoutes } from './north/job-schedules.routes';
import { jobsRoutes, openGateJobsRoutes } from './north/jobs.routes';
import { keysRoutes } from './north/keys.routes';
import { deviceOperationsRoutes, operationsRoutes } from './north/operations.routes';
import { auditRoutes, organizationsRoutes } from './north/organizations.routes';
import { rolesRoutes } from './north/roles.routes';
import { usersRoutes } from './north/users.routes';
import { buildOpenApi } from './openapi';
import { southFunctionsRoutes } from './south/functions.routes';
import { mqttHookRoutes } from './south/mqtt-hooks.routes';
import { southRoutes } from './south/south.routes';
import type { Services } from './services';

const openApiRoutes = new RouteGroup(OPENAPI_PATH);
let openApiDocument: Record<string, unknown> | undefined;
openApiRoutes.get('/', PUBLIC, { summary: 'This API description (OpenAPI 3.1)', tag: 'Meta' }, (c) => {
  // Built on first use, from the table below (complete by then).
  openApiDocument ??= buildOpenApi(ROUTE_TABLE, process.env.npm_package_version ?? '0.1.0');
  return c.json(openApiDocument);
});

/** Every route group, in mounting order; a route exists only if declared here with its access rule. */
const ROUTE_GROUPS: readonly RouteGroup[] = [
  healthRoutes,
  openApiRoutes,
  docsRoutes,
  authRoutes,
  meRoutes,
  organizationsRoutes,
  usersRoutes,
  rolesRoutes,
  keysRoutes,
  auditRoutes,
  deviceOperationsRoutes,
  deviceAlarmsRoutes,
  deviceEventsRoutes,
  alarmsRoutes,
  eventsRoutes,
  desiredRoutes,
  authoritiesRoutes,
  deviceCertificatesRoutes,
  devicesRoutes,
  operationsRoutes,
  jobsRoutes,
  jobSchedulesRoutes,
  openGateJobsRoutes,
  southRoutes,
  // After southRoutes: `collect/iot` is the OpenGate body and is matched first.
  southFunctionsRoutes,
  functionsRoutes,
  forwardersRoutes,
  mqttHookRoutes,
];

/** The route table: method, path, access rule and documentation of every route the API serves. */
export const ROUTE_TABLE: readonly RouteEntry[] = ROUTE_GROUPS.flatMap((g) => g.entries);

export interface AppOptions {
  /** Largest body the north API accepts (bytes). */
  readonly maxNorthBodyBytes: number;
  /** Largest body a device may send (bytes). */
  readonly maxSouthBodyBytes: number;
}

const DEFAULT_APP_OPTIONS: AppOptions = {
  maxNorthBodyBytes: 4 * 1024 * 1024,
  maxSouthBodyBytes: 1024 * 1024,
};

const tooLarge = (limit: number) => () => {
  throw new ApiError('PAYLOAD_TOO_LARGE', `the body is larger than ${limit} bytes`);
};

/** Whether the request's body was read, through Hono's request or straight from Node's (readJson). */
function bodyRead(c: { readonly env: unknown; readonly req: { readonly raw: Request } }): boolean {
  const incoming = incomingOf(c);
  return incoming?.complete === true || c.req.raw.bodyUsed;
}

/**
 * Refuses bodies over `maxSize` bytes. A request that declares its length (or has no body) is judged from Node's
 * own headers, without building the Web Request Hono's check reads (which cost every GET a poll's worth of CPU);
 * a chunked body is counted by Hono's check as it streams in.
 */
function limitBody(maxSize: number): MiddlewareHandler<AppEnv> {
  const onError = tooLarge(maxSize);
  const streamed = bodyLimit({ maxSize, onError });
  return async (c, next) => {
    const incoming = incomingOf(c);
    if (!incoming || incoming.headers['transfer-encoding'] !== undefined) return streamed(c, next);
    const length = incoming.headers['content-length'];
    if (length !== undefined && parseInt(length, 10) > maxSize) return onError();
    await next();
  };
}

export function createApp(services: Services, options: AppOptions = DEFAULT_APP_OPTIONS): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use('*', async (c, next) => {
    const given = c.req.header('x-request-id');
    const requestId = given && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
    c.set('requestId', requestId);
    c.set('services', services);
    c.set('logger', services.logger);
    c.header('X-Request-Id', requestId);
    await next();
    // A body the route never read (refused before parsing) is drained after the answer; if draining is
    // slow the server drops the connection, which a client reusing it would see as an error. Saying so
    // up front makes the client open a fresh one instead.
    const length = c.req.header('content-length');
    const hasBody =
      (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined;
    if (hasBody && !bodyRead(c)) c.res.headers.set('Connection', 'close');
  });
  app.use('/north/*', limitBody(options.maxNorthBodyBytes));
  app.use('/south/*', limitBody(options.maxSouthBodyBytes));

  for (const group of ROUTE_GROUPS) app.route(group.base || '/', group.app);
  assertEveryRouteDeclared(app, ROUTE_TABLE);

  app.notFound((c) =>
    c.json(errorBody('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`, c.get('requestId')), 404),
  );
  app.onError((thrown, c) => {
    const requestId = c.get('requestId') ?? randomUUID();
    // A service refusal thrown through a call stack answers as its API error.
    const err = thrown instanceof RefusedError ? new ApiError(thrown.code, thrown.message) : thrown;
    if (err instanceof ApiError) {
      // The rest of an oversized body is never read, so the connection cannot carry another request.
      if (err.code === 'PAYLOAD_TOO_LARGE') c.header('Connection', 'close');
      if (err.code === 'UNAVAILABLE') c.header('Retry-After', '1');
      return c.json(errorBody(err.code, err.message, requestId, err.details), err.status);
    }
    if (isStoreUnavailable(err)) {
      // Overloaded or unreachable store: nothing was acknowledged, so the sender retries later.
      services.logger.warn({ err, requestId, path: c.req.path }, 'inventory unavailable');
      c.header('Retry-After', '1');
      return c.json(
        errorBody('UNAVAILABLE', 'the inventory is busy or unreachable; retry shortly', requestId),
        503,
      );
    }
    if (err instanceof HTTPException && err.status < 500) {
      return c.json(errorBody('BAD_REQUEST', err.message || 'bad request', requestId), err.status);
    }
    services.logger.error({ err, requestId, path: c.req.path, method: c.req.method }, 'request failed');
    return c.json(
      errorBody('INTERNAL', 'internal error; the request id identifies it in the logs', requestId),
      500,
    );
  });
  return app;
}

/**
 * Answers requests Node's HTTP parser refuses before the app sees them (headers too large, malformed
 * request line) in the API's own error shape, then closes the connection.
 */
export function handleClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const overflow = err.code === 'HPE_HEADER_OVERFLOW';
  const status = overflow ? 431 : 400;
  const body = JSON.stringify(
    errorBody(
      overflow ? 'HEADERS_TOO_LARGE' : 'BAD_REQUEST',
      overflow ? 'the request headers are too large' : 'malformed HTTP request',
      randomUUID(),
    ),
  );
  socket.end(
    `HTTP/1.1 ${status} ${overflow ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Errors that mean the store could not take the request now, not that the request was wrong. */
function isStoreUnavailable(err: unknown, depth = 0): boolean {
  if (err instanceof MongoNetworkError || err instanceof MongoServerSelectionError) return true;
  // FerretDB on SQLite reports lock timeouts as InternalError "database is locked (SQLITE_BUSY)".
  if (err instanceof MongoServerError && /SQLITE_BUSY|database is locked/.test(err.message)) return true;
  // Bulk writes wrap the real failure (a MongoBulkWriteError around a network error).
  if (depth < 3 && err instanceof Error) {
    const inner = (err as { errorResponse?: unknown }).errorResponse;
    return (
      isStoreUnavailable(err.cause, depth + 1) ||
      (inner instanceof Error && isStoreUnavailable(inner, depth + 1))
    );
  }
  return false;
}
