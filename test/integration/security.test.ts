// The security suite. It walks the route table the API itself is built from, so a new route is covered the
// moment it exists: every north route without a credential, with bad ones, with a device key, with each role
// and with another organization's admin; every south route with another device's key. Nothing may change.
import type { MongoClient } from 'mongodb';
import { SignJWT } from 'jose';
import { ROUTE_TABLE } from '../../api/app';
import type { RouteEntry } from '../../api/access/route-group';
import {
  type Actor,
  type Fixture,
  fillPath,
  MISSING,
  setUpFixture,
  stateDigest,
  VALID_BODIES,
} from './identity-fixture';
import { apiClient, mongoClient } from './harness';

jest.setTimeout(120_000);

const label = (r: RouteEntry) => `${r.method} ${r.path}`;
const north = ROUTE_TABLE.filter((r) => r.access.kind === 'action' || r.access.kind === 'signed-in');
const south = ROUTE_TABLE.filter((r) => r.access.kind === 'device');
const publicRoutes = ROUTE_TABLE.filter((r) => r.access.kind === 'public');

/** Whether the actor's role lets it through the route's guard. */
const allowed = (route: RouteEntry, actor: Actor): boolean => {
  const access = route.access;
  if (access.kind === 'signed-in' || access.kind === 'public') return true;
  if (access.kind === 'device') return actor.permissions.has('devices:write');
  return actor.permissions.has(access.action);
};

describe('security suite over the route table', () => {
  let fx: Fixture;
  let mongo: MongoClient;
  let before: Record<string, string>;
  let badCredentials: { name: string; headers: Record<string, string> }[];

  const send = (route: RouteEntry, path: string, headers: Record<string, string>, body?: unknown) =>
    apiClient(fx.tf.baseUrl).request(
      route.method,
      path,
      route.method === 'GET' ? undefined : (body ?? VALID_BODIES[label(route)] ?? {}),
      headers,
    );

  beforeAll(async () => {
    fx = await setUpFixture();
    mongo = await mongoClient();
    const db = fx.tf.env.MONGODB_DB as string;

    // Credentials that must all fail: revoked, unknown, malformed, and tokens forged every way we know.
    const revoked = await fx.platform.client.post('/north/v1/keys', { name: 'soon revoked', role: 'viewer' });
    expect((await fx.platform.client.delete(`/north/v1/keys/${revoked.body.keyId}`)).status).toBe(200);
    const secretDoc = await mongo
      .db(db)
      .collection<{ _id: string; value: string }>('settings')
      .findOne({ _id: 'jwt-secret' });
    const realKey = new TextEncoder().encode(secretDoc?.value ?? '');
    const wrongKey = new TextEncoder().encode('x'.repeat(48));
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, key: Uint8Array, exp = now + 600) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('twinflow')
        .setAudience('twinflow-api')
        .setIssuedAt(now - 10)
        .setExpirationTime(exp)
        .sign(key);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const viewerEmail = fx.params.email as string;
    const claims = { sub: viewerEmail, org: fx.orgA, sid: 'f'.repeat(32) };
    const algNone = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, iss: 'twinflow', aud: 'twinflow-api', iat: now, exp: now + 600 })}.`;
    const validLogin = await fx.login(viewerEmail);
    const [payloadPart] = validLogin.accessToken.split('.').slice(1);
    const tamperedClaims = JSON.parse(Buffer.from(payloadPart as string, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    const [headerPart, , sigPart] = validLogin.accessToken.split('.');
    const tampered = `${headerPart}.${b64({ ...tamperedClaims, org: fx.orgB })}.${sigPart}`;
    badCredentials = [
      { name: 'an unknown API key', headers: { 'X-ApiKey': `tfk_deadbeef_${'A'.repeat(43)}` } },
      { name: 'a revoked API key', headers: { 'X-ApiKey': revoked.body.apiKey } },
      { name: 'a too short API key', headers: { 'X-ApiKey': 'x' } },
      { name: 'a Basic authorization', headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } },
      { name: 'a garbage bearer token', headers: { authorization: 'Bearer not.a.token' } },
      { name: 'an alg:none token', headers: { authorization: `Bearer ${algNone}` } },
      {
        name: 'a token signed with another key',
        headers: { authorization: `Bearer ${await sign(claims, wrongKey)}` },
      },
      {
        name: 'an expired token',
        headers: {
          authorization: `Bearer ${await sign({ ...claims, sid: 'e'.repeat(32) }, realKey, now - 60)}`,
        },
      },
      {
        name: 'a token for a session that never existed',
        headers: { authorization: `Bearer ${await sign(claims, realKey)}` },
      },
      {
        name: 'a token whose organization claim was changed',
        headers: { authorization: `Bearer ${tampered}` },
      },
      {
        name: 'a valid key and a bearer token together',
        headers: { 'X-ApiKey': fx.tf.adminKey, authorization: `Bearer ${validLogin.accessToken}` },
      },
    ];
    before = await stateDigest(mongo, db);
  });

  afterAll(async () => {
    await mongo?.close();
    await fx?.tf.stop();
  });

  it('finds every route the API serves in the table, each with an access rule', () => {
    expect(ROUTE_TABLE.length).toBeGreaterThanOrEqual(35);
    expect(north.length + south.length + publicRoutes.length).toBe(ROUTE_TABLE.length);
    expect(publicRoutes.map(label).sort()).toEqual([
      'GET /healthz',
      'GET /metrics',
      'GET /north/v1/docs',
      'GET /north/v1/docs/:file',
      'GET /north/v1/openapi.json',
      'GET /readyz',
      'POST /north/v1/auth/login',
      'POST /north/v1/auth/logout',
      'POST /north/v1/auth/refresh',
      'POST /south/v80/mqtt/acl',
      'POST /south/v80/mqtt/auth',
    ]);
  });

  describe.each(north.map((r) => [label(r), r] as const))('%s', (_name, route) => {
    it('answers 401 without a credential', async () => {
      const res = await send(route, fillPath(route.path, fx.params), {});
      expect({ status: res.status, code: res.body?.error?.code }).toEqual({
        status: 401,
        code: 'UNAUTHENTICATED',
      });
    });

    it('answers 401 to every bad credential', async () => {
      const answers = await Promise.all(
        badCredentials.map(async (cred) => {
          const res = await send(route, fillPath(route.path, fx.params), cred.headers);
          return [cred.name, res.status] as const;
        }),
      );
      expect(Object.fromEntries(answers)).toEqual(
        Object.fromEntries(badCredentials.map((c) => [c.name, 401])),
      );
    });

    it('answers 403 to a device key', async () => {
      const res = await send(route, fillPath(route.path, fx.params), { 'X-ApiKey': fx.deviceA.key });
      expect({ status: res.status, code: res.body?.error?.code }).toEqual({
        status: 403,
        code: 'PERMISSION_DENIED',
      });
    });

    it('lets each role through exactly as its permissions say', async () => {
      const answers = await Promise.all(
        fx.actors.map(async (actor) => {
          if (!allowed(route, actor)) {
            const res = await send(route, fillPath(route.path, fx.params), actor.headers);
            return [actor.name, res.status === 403 ? 'refused' : `answered ${res.status}`] as const;
          }
          // Let through: reads use real resources, changes use missing ones or an empty body.
          const path = fillPath(route.path, route.method === 'GET' ? fx.params : MISSING);
          const res = await send(route, path, actor.headers, { probe: true });
          const through = res.status < 500 && res.status !== 401 && res.status !== 403;
          return [
            actor.name,
            through ? 'let through' : `answered ${res.status} ${JSON.stringify(res.body)}`,
          ] as const;
        }),
      );
      expect(Object.fromEntries(answers)).toEqual(
        Object.fromEntries(fx.actors.map((a) => [a.name, allowed(route, a) ? 'let through' : 'refused'])),
      );
    });

    if (/:\w+/.test(route.path)) {
      it("answers 404 for another organization's resources", async () => {
        const actor = fx.otherOrgAdmin;
        const res = await send(route, fillPath(route.path, fx.params), actor.headers);
        // A route org B's admin may not use at all is refused before any lookup.
        const expected = allowed(route, actor) ? 404 : 403;
        expect({ status: res.status, body: res.body }).toEqual({ status: expected, body: expect.anything() });
      });
    } else if (route.method === 'GET') {
      it("shows none of another organization's records", async () => {
        const res = await send(route, route.path, fx.otherOrgAdmin.headers);
        const text = JSON.stringify(res.body);
        expect(res.status).toBeLessThan(500);
        for (const leaked of [fx.deviceA.id, fx.deviceA2.id, fx.params.email, fx.params.name]) {
          expect(text).not.toContain(leaked);
        }
      });
    }
  });

  describe.each(south.map((r) => [label(r), r] as const))('%s', (_name, route) => {
    const body = route.path.endsWith('collect/iot')
      ? { version: '1.0.0', datastreams: [{ id: 'temperature', datapoints: [{ value: 1 }] }] }
      : {
          version: '8.0',
          operation: { response: { id: '00000000-0000-4000-8000-000000000000', resultCode: 'SUCCESSFUL' } },
        };

    it('answers 401 without a credential and to a bad key', async () => {
      const path = fillPath(route.path, fx.params);
      expect((await send(route, path, {}, body)).status).toBe(401);
      expect((await send(route, path, { 'X-ApiKey': `tfk_deadbeef_${'B'.repeat(43)}` }, body)).status).toBe(
        401,
      );
    });

    it("answers 403 to another device's key, of this organization or another", async () => {
      const path = fillPath(route.path, fx.params);
      const sibling = await send(route, path, { 'X-ApiKey': fx.deviceA2.key }, body);
      const foreign = await send(route, path, { 'X-ApiKey': fx.deviceB.key }, body);
      const viaQuery = await send(route, `${path}?X-ApiKey=${encodeURIComponent(fx.deviceA2.key)}`, {}, body);
      expect([sibling.status, foreign.status, viaQuery.status]).toEqual([403, 403, 403]);
    });

    it('lets north principals act for a device only with devices:write', async () => {
      const answers = await Promise.all(
        fx.actors
          .filter((a) => !allowed(route, a))
          .map(
            async (a) =>
              [a.name, (await send(route, fillPath(route.path, fx.params), a.headers, body)).status] as const,
          ),
      );
      for (const [, status] of answers) expect(status).toBe(403);
      // org B's admin holds devices:write, but in its own organization org A's device does not exist.
      const foreign = await send(route, fillPath(route.path, fx.params), fx.otherOrgAdmin.headers, body);
      expect(foreign.status).toBe(404);
    });
  });

  it('changed nothing stored', async () => {
    expect(await stateDigest(mongo, fx.tf.env.MONGODB_DB as string)).toEqual(before);
  });
});
