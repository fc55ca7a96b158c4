// Covers the route table rule: a route exists only with an access rule, and the app checks it at start.
import { Hono } from 'hono';
import { ROUTE_TABLE } from '../../../../api/app';
import { type Access, assertEveryRouteDeclared, can, RouteGroup } from '../../../../api/access/route-group';
import type { AppEnv } from '../../../../api/context';

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
        /^\/(healthz|readyz|metrics)$|^\/north\/v1\/(auth\/|openapi\.json)|^\/south\/v80\/mqtt\/(auth|acl)$/,
      );
    // Device routes (everything south but the broker hooks, which carry the device's credentials in the body).
    const south = ROUTE_TABLE.filter((r) => r.path.startsWith('/south/v80/devices/'));
    expect(south.length).toBeGreaterThan(3);
    expect(south.every((r) => r.access.kind === 'device')).toBe(true);
  });
});
