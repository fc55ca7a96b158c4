// Covers the route table rule: a route exists only with an access rule, and the app checks it at start.
import { Hono } from 'hono';
import { z } from 'zod';
import { ROUTE_TABLE } from '../../../../api/app';
import {
  type Access,
  assertEveryRouteDeclared,
  can,
  PUBLIC,
  RouteGroup,
} from '../../../../api/access/route-group';
import type { AppEnv } from '../../../../api/context';
import { ApiError, errorBody } from '../../../../api/errors';
import type { Services } from '../../../../api/services';
import { deviceIdParam } from '../../../../api/validation';

describe('RouteGroup', () => {
  it('records each route with its full path and access rule', () => {
    const g = new RouteGroup('/north/v1/things');
    g.get('/', can('devices:read'), { summary: 'list', tag: 't' }, (c) => c.json([]));
    g.on(['GET', 'POST'], '/:id/poke', can('devices:write'), { summary: 'poke', tag: 't' }, (c) =>
      c.json({}),
    );
    expect(g.entries.map((e) => `${e.method} ${e.path}`)).toEqual([
      'GET /north/v1/things',
      'GET /north/v1/things/:id/poke',
      'POST /north/v1/things/:id/poke',
    ]);
  });

  it('refuses a route without an access rule', () => {
    const g = new RouteGroup('/x');
    expect(() =>
      g.get('/', undefined as unknown as Access, { summary: 's', tag: 't' }, (c) => c.json({})),
    ).toThrow(/declares no access rule/);
  });
});

describe('RouteGroup input', () => {
  const bodySchema = z.object({ name: z.string().min(1), count: z.number().int() }).strict();
  const querySchema = z.object({ limit: z.coerce.number().int().min(1).default(10) }).strict();
  const seen: unknown[] = [];
  const g = new RouteGroup('/things');
  g.post(
    '/:deviceId',
    PUBLIC,
    { summary: 's', tag: 't', params: { deviceId: deviceIdParam() }, query: querySchema, body: bodySchema },
    (c, { params, query, body }) => {
      // Typed from the declaration: these lines would not compile against the wrong shapes.
      const typed: { deviceId: string; limit: number; name: string; count: number } = {
        deviceId: params.deviceId,
        limit: query.limit,
        name: body.name,
        count: body.count,
      };
      seen.push(typed);
      return c.json(typed);
    },
  );
  g.post('/guarded/x', can('devices:write'), { summary: 's', tag: 't', body: bodySchema }, (c) => c.json({}));
  const app = new Hono<AppEnv>();
  const unauthenticated = {
    authenticateKey: async () => ({ ok: false }),
    authenticateBearer: async () => ({ ok: false }),
  };
  app.use('*', async (c, next) => {
    c.set('services', { auth: unauthenticated } as unknown as Services);
    await next();
  });
  app.route('/things', g.app);
  app.onError((err, c) =>
    err instanceof ApiError
      ? c.json(errorBody(err.code, err.message, 'r', err.details), err.status)
      : c.json({ unexpected: String(err) }, 500),
  );
  const post = (path: string, body: string | undefined, type = 'application/json') =>
    app.request(path, {
      method: 'POST',
      ...(body === undefined ? {} : { body }),
      headers: type ? { 'content-type': type } : {},
    });
  const error = async (res: Response) => ({
    status: res.status,
    ...((await res.json()) as { error: { code: string; message: string } }).error,
  });

  it('hands the handler its path, query and body, validated and with defaults', async () => {
    const res = await post('/things/dev-1', '{"name":"a","count":2}');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ deviceId: 'dev-1', limit: 10, name: 'a', count: 2 });
  });

  it('refuses a body of the wrong shape with the issue path and message', async () => {
    const res = await post('/things/dev-1?limit=3', '{"name":"a","count":"2"}');
    expect(await error(res)).toMatchObject({
      status: 400,
      code: 'INVALID_ARGUMENT',
      message: 'invalid body: count: Expected number, received string',
      details: [{ path: 'count', message: 'Expected number, received string' }],
    });
  });

  it('refuses a body that is not JSON, empty or malformed', async () => {
    expect(await error(await post('/things/dev-1', 'a,b', 'text/csv'))).toMatchObject({
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    });
    expect(await error(await post('/things/dev-1', ''))).toMatchObject({
      status: 400,
      code: 'BAD_REQUEST',
      message: 'the request body is empty; a JSON body is required',
    });
    expect(await error(await post('/things/dev-1', '{"name":'))).toMatchObject({
      status: 400,
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/^malformed JSON: /),
    });
  });

  it('refuses query parameters given twice or unknown', async () => {
    const body = '{"name":"a","count":2}';
    expect(await error(await post('/things/dev-1?limit=1&limit=2', body))).toMatchObject({
      status: 400,
      message: 'query parameter limit given more than once',
    });
    expect(await error(await post('/things/dev-1?limit[$gt]=0', body))).toMatchObject({
      status: 400,
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/^invalid query: /),
    });
  });

  it('answers 404 for a path parameter that cannot exist, before reading the body', async () => {
    expect(await error(await post('/things/%24ne', '{'))).toMatchObject({
      status: 404,
      message: 'device $ne not found',
    });
  });

  it('runs the access guard before any body is read', async () => {
    const req = new Request('http://x/things/guarded/x', {
      method: 'POST',
      body: '{',
      headers: { 'content-type': 'application/json' },
    });
    expect(await error(await app.request(req))).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    expect(req.bodyUsed).toBe(false);
  });

  it('refuses to declare a parameter the path does not have', () => {
    expect(() =>
      new RouteGroup('/x').get(
        '/',
        PUBLIC,
        { summary: 's', tag: 't', params: { id: deviceIdParam() } },
        (c) => c.json({}),
      ),
    ).toThrow('route /x declares a parameter id it does not have');
  });
});

describe('assertEveryRouteDeclared', () => {
  it('passes when every route came through a group', () => {
    const g = new RouteGroup('/a');
    g.get('/b', can('devices:read'), { summary: 's', tag: 't' }, (c) => c.json({}));
    const app = new Hono<AppEnv>();
    app.use('*', async (_c, next) => next());
    app.route('/a', g.app);
    expect(() => assertEveryRouteDeclared(app, g.entries)).not.toThrow();
  });

  it('names a route mounted around the table', () => {
    const app = new Hono<AppEnv>();
    app.get('/sneaky', (c) => c.json({}));
    expect(() => assertEveryRouteDeclared(app, [])).toThrow(
      'routes mounted without an access rule: GET /sneaky',
    );
  });
});

describe('the API route table', () => {
  it('has one entry per method and path, and every north route outside auth needs a credential', () => {
    const keys = ROUTE_TABLE.map((r) => `${r.method} ${r.path}`);
    expect(new Set(keys).size).toBe(keys.length);
    const open = ROUTE_TABLE.filter((r) => r.access.kind === 'public').map((r) => r.path);
    for (const p of open)
      expect(p).toMatch(
        /^\/(healthz|readyz|metrics)$|^\/north\/v1\/(auth\/|openapi\.json$|docs$|docs\/:file$)|^\/south\/v80\/mqtt\/(auth|acl)$/,
      );
    // Device routes (everything south but the broker hooks, which carry the device's credentials in the body).
    const south = ROUTE_TABLE.filter((r) => r.path.startsWith('/south/v80/devices/'));
    expect(south.length).toBeGreaterThan(3);
    expect(south.every((r) => r.access.kind === 'device')).toBe(true);
  });

  it('refuses unknown query parameters on every route that declares a query', () => {
    const withQuery = ROUTE_TABLE.filter((r) => r.doc.query);
    expect(withQuery.length).toBeGreaterThan(10);
    for (const route of withQuery) {
      const result = route.doc.query?.safeParse({ notAParameter: 'x' });
      expect({
        route: `${route.method} ${route.path}`,
        codes: result?.error?.issues.map((i) => i.code),
      }).toEqual({
        route: `${route.method} ${route.path}`,
        codes: expect.arrayContaining(['unrecognized_keys']),
      });
    }
  });
});
