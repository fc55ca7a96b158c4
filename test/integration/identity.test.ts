// Identity and access end to end: logins, rotating refresh tokens, logout, password change, throttling,
// service and device keys, custom roles, escalation refusals, the audit log and the OpenAPI description.
import type { MongoClient } from 'mongodb';
import { ROUTE_TABLE } from '../../api/app';
import { type Fixture, PASSWORD, setUpFixture } from './identity-fixture';
import {
  apiClient,
  collectBody,
  eventually,
  mongoClient,
  startTwinflow,
  type TwinflowProcess,
  uniqueName,
} from './harness';

jest.setTimeout(120_000);

describe('identity and access', () => {
  let fx: Fixture;
  let mongo: MongoClient;
  const anonymous = () => apiClient(fx.tf.baseUrl);
  const newUser = async (role: string, password = PASSWORD) => {
    const email = `${uniqueName(role)}@a.example`.toLowerCase();
    const res = await fx.platform.client.post('/north/v1/users', { email, password, role });
    expect(res.status).toBe(201);
    return email;
  };

  beforeAll(async () => {
    fx = await setUpFixture();
    mongo = await mongoClient();
  });

  afterAll(async () => {
    await mongo?.close();
    await fx?.tf.stop();
  });

  describe('login and sessions', () => {
    it('logs a user in and says who they are', async () => {
      const email = await newUser('operator');
      const tokens = await fx.login(email);
      expect(tokens).toMatchObject({
        tokenType: 'Bearer',
        expiresIn: 900,
        user: { email, org: fx.orgA, role: 'operator' },
      });
      const me = await fx.bearer(tokens.accessToken).get('/north/v1/me');
      expect(me.body).toEqual({
        kind: 'user',
        id: email,
        org: fx.orgA,
        role: 'operator',
        platformAdmin: false,
        permissions: [
          'alarms:manage',
          'alarms:read',
          'certificates:manage',
          'certificates:read',
          'devices:read',
          'devices:write',
          'events:read',
          'forwarders:read',
          'functions:read',
          'jobs:manage',
          'jobs:read',
          'operations:cancel',
          'operations:create',
          'operations:read',
        ],
      });
    });

    it('answers a wrong password and an unknown address alike', async () => {
      const email = await newUser('viewer');
      const wrong = await anonymous().post('/north/v1/auth/login', { email, password: 'not the password' });
      const unknown = await anonymous().post('/north/v1/auth/login', {
        email: 'ghost@a.example',
        password: PASSWORD,
      });
      expect([wrong.status, unknown.status]).toEqual([401, 401]);
      expect(wrong.body.error.message).toBe(unknown.body.error.message);
    });

    it('rotates refresh tokens, and a reused one ends the whole session', async () => {
      const email = await newUser('viewer');
      const first = await fx.login(email);
      const second = await anonymous().post('/north/v1/auth/refresh', { refreshToken: first.refreshToken });
      expect(second.status).toBe(200);
      expect(second.body.refreshToken).not.toBe(first.refreshToken);
      expect((await fx.bearer(second.body.accessToken).get('/north/v1/me')).status).toBe(200);

      // The first token again: someone holds a copy. The session ends for both holders.
      const replay = await anonymous().post('/north/v1/auth/refresh', { refreshToken: first.refreshToken });
      expect(replay.status).toBe(401);
      const afterReplay = await anonymous().post('/north/v1/auth/refresh', {
        refreshToken: second.body.refreshToken,
      });
      expect(afterReplay.status).toBe(401);
      expect((await fx.bearer(second.body.accessToken).get('/north/v1/me')).status).toBe(401);
      // Another login is a new session and works.
      expect((await fx.bearer((await fx.login(email)).accessToken).get('/north/v1/me')).status).toBe(200);
    });

    it('logs out: the refresh token and its access tokens stop working', async () => {
      const email = await newUser('viewer');
      const tokens = await fx.login(email);
      expect(
        (await anonymous().post('/north/v1/auth/logout', { refreshToken: tokens.refreshToken })).status,
      ).toBe(204);
      expect((await fx.bearer(tokens.accessToken).get('/north/v1/me')).status).toBe(401);
      expect(
        (await anonymous().post('/north/v1/auth/refresh', { refreshToken: tokens.refreshToken })).status,
      ).toBe(401);
    });

    it('changes a password and ends the sessions started with the old one', async () => {
      const email = await newUser('viewer');
      const tokens = await fx.login(email);
      const client = fx.bearer(tokens.accessToken);
      const wrong = await client.post('/north/v1/auth/password', {
        currentPassword: 'wrong wrong wrong',
        newPassword: 'a brand new passphrase',
      });
      expect(wrong.status).toBe(401);
      const short = await client.post('/north/v1/auth/password', {
        currentPassword: PASSWORD,
        newPassword: 'short',
      });
      expect(short.status).toBe(400);
      const changed = await client.post('/north/v1/auth/password', {
        currentPassword: PASSWORD,
        newPassword: 'a brand new passphrase',
      });
      expect(changed.status).toBe(204);
      expect((await client.get('/north/v1/me')).status).toBe(401);
      expect(
        (await anonymous().post('/north/v1/auth/refresh', { refreshToken: tokens.refreshToken })).status,
      ).toBe(401);
      expect((await anonymous().post('/north/v1/auth/login', { email, password: PASSWORD })).status).toBe(
        401,
      );
      expect((await fx.login(email, 'a brand new passphrase')).accessToken).toEqual(expect.any(String));
    });

    it('throttles repeated failed logins for an account, even with the right password after', async () => {
      const email = await newUser('viewer');
      const statuses: number[] = [];
      for (let i = 0; i < 11; i++) {
        statuses.push(
          (await anonymous().post('/north/v1/auth/login', { email, password: `guess number ${i}` })).status,
        );
      }
      expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
      expect(statuses[10]).toBe(429);
      const right = await anonymous().post('/north/v1/auth/login', { email, password: PASSWORD });
      expect(right.status).toBe(429);
      expect(Number(right.headers.get('retry-after'))).toBeGreaterThan(0);
    });

    it('refuses a disabled user at once, token and login alike', async () => {
      const email = await newUser('viewer');
      const tokens = await fx.login(email);
      const res = await fx.platform.client.patch(`/north/v1/users/${encodeURIComponent(email)}`, {
        disabled: true,
      });
      expect(res.status).toBe(200);
      expect((await fx.bearer(tokens.accessToken).get('/north/v1/devices')).status).toBe(401);
      expect((await anonymous().post('/north/v1/auth/login', { email, password: PASSWORD })).status).toBe(
        401,
      );
    });
  });

  describe('keys', () => {
    it('creates a service key shown once, lists it without its secret, rotates and revokes it at once', async () => {
      const created = await fx.platform.client.post('/north/v1/keys', { name: 'reports', role: 'viewer' });
      expect(created.status).toBe(201);
      const key = created.body.apiKey as string;
      const service = apiClient(fx.tf.baseUrl, key);
      expect((await service.get('/north/v1/devices')).status).toBe(200);
      expect(
        (await service.post(`/north/v1/devices/${fx.deviceA.id}/operations`, { name: 'REFRESH_INFO' }))
          .status,
      ).toBe(403);

      const list = await fx.platform.client.get('/north/v1/keys?kind=service');
      expect(JSON.stringify(list.body)).not.toContain(key.slice(14));
      expect(list.body.keys).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ keyId: created.body.keyId, role: 'viewer', name: 'reports' }),
        ]),
      );

      const rotated = await fx.platform.client.post(`/north/v1/keys/${created.body.keyId}/rotate`);
      expect(rotated.status).toBe(201);
      expect((await service.get('/north/v1/devices')).status).toBe(401);
      const next = apiClient(fx.tf.baseUrl, rotated.body.apiKey);
      expect((await next.get('/north/v1/devices')).status).toBe(200);
      expect((await fx.platform.client.delete(`/north/v1/keys/${rotated.body.keyId}`)).status).toBe(200);
      expect((await next.get('/north/v1/devices')).status).toBe(401);
    });

    it("revokes a device's key: the device is refused on the south API at once", async () => {
      const id = uniqueName('dev').replace('_', '-');
      const dev = await fx.platform.client.post('/north/v1/devices', { id });
      const device = apiClient(fx.tf.baseUrl, dev.body.apiKey);
      expect(
        (
          await device.post(
            `/south/v80/devices/${id}/collect/iot`,
            collectBody([{ id: 'temperature', datapoints: [{ value: 21 }] }]),
          )
        ).status,
      ).toBe(201);
      const keys = await fx.platform.client.get(`/north/v1/keys?kind=device&deviceId=${id}`);
      expect(keys.body.keys).toHaveLength(1);
      const rotated = await fx.platform.client.post(`/north/v1/keys/${keys.body.keys[0].keyId}/rotate`);
      expect(
        (
          await device.post(
            `/south/v80/devices/${id}/collect/iot`,
            collectBody([{ id: 'temperature', datapoints: [{ value: 22 }] }]),
          )
        ).status,
      ).toBe(401);
      const renewed = apiClient(fx.tf.baseUrl, rotated.body.apiKey);
      expect(
        (
          await renewed.post(
            `/south/v80/devices/${id}/collect/iot`,
            collectBody([{ id: 'temperature', datapoints: [{ value: 23 }] }]),
          )
        ).status,
      ).toBe(201);
    });
  });

  describe('roles', () => {
    it('applies a custom role, and a change to it at once', async () => {
      const name = `field-${Date.now().toString(36)}`;
      expect(
        (await fx.platform.client.post('/north/v1/roles', { name, permissions: ['devices:read'] })).status,
      ).toBe(201);
      const email = await newUser(name);
      const client = fx.bearer((await fx.login(email)).accessToken);
      expect((await client.get('/north/v1/devices')).status).toBe(200);
      expect((await client.get(`/north/v1/devices/${fx.deviceA.id}/operations`)).status).toBe(403);
      expect(
        (
          await fx.platform.client.request('PUT', `/north/v1/roles/${name}`, {
            permissions: ['devices:read', 'operations:read'],
          })
        ).status,
      ).toBe(200);
      expect((await client.get(`/north/v1/devices/${fx.deviceA.id}/operations`)).status).toBe(200);
      // Held by a user: it cannot be deleted until they get another role.
      expect((await fx.platform.client.delete(`/north/v1/roles/${name}`)).status).toBe(409);
      expect(
        (await fx.platform.client.request('PUT', '/north/v1/roles/viewer', { permissions: [] })).status,
      ).toBe(409);
    });

    it('refuses to grant rights the granter does not hold', async () => {
      const name = `hr-${Date.now().toString(36)}`;
      await fx.platform.client.post('/north/v1/roles', {
        name,
        permissions: ['users:manage', 'users:read', 'devices:read'],
      });
      const hr = fx.bearer((await fx.login(await newUser(name))).accessToken);
      const asAdmin = await hr.post('/north/v1/users', {
        email: 'climber@a.example',
        password: PASSWORD,
        role: 'org-admin',
      });
      expect(asAdmin.status).toBe(403);
      const asPeer = await hr.post('/north/v1/users', {
        email: 'peer@a.example',
        password: PASSWORD,
        role: 'viewer',
      });
      expect(asPeer.status).toBe(403); // viewer holds operations:read, which this role lacks
      const selfRole = await hr.post('/north/v1/roles', { name: 'everything', permissions: ['keys:manage'] });
      expect(selfRole.status).toBe(403);
      const platform = await fx.platform.client.post('/north/v1/users', {
        email: 'root@a.example',
        password: PASSWORD,
        role: 'platform-admin',
      });
      expect(platform.status).toBe(400);
      const orgAdmin = fx.bearer((await fx.login(await newUser('org-admin'))).accessToken);
      expect((await orgAdmin.post('/north/v1/organizations', { id: 'sneaky', name: 'Sneaky' })).status).toBe(
        403,
      );
      expect(
        (
          await orgAdmin.post('/north/v1/roles', {
            name: 'tenant-maker',
            permissions: ['organizations:manage'],
          })
        ).status,
      ).toBe(400);
    });
  });

  describe('audit log', () => {
    it('records who provisioned, requested, cancelled and changed roles; other organizations see none of it', async () => {
      const email = await newUser('operator');
      const operator = fx.bearer((await fx.login(email)).accessToken);
      const op = await operator.post(`/north/v1/devices/${fx.deviceA2.id}/operations`, {
        name: 'REFRESH_INFO',
      });
      expect(op.status).toBe(202);
      expect(op.body.requestedBy).toBe(`user:${email}`);
      expect((await operator.post(`/north/v1/operations/${op.body.id}/cancel`)).status).toBeLessThan(300);

      const log = await fx.platform.client.get('/north/v1/audit?limit=500');
      expect(log.status).toBe(200);
      const entries = log.body.entries as { actor: string; action: string; resource: string }[];
      expect(entries).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            actor: `user:${email}`,
            action: 'operation.request',
            resource: `operations/${op.body.id}`,
          }),
          expect.objectContaining({
            actor: `user:${email}`,
            action: 'operation.cancel',
            resource: `operations/${op.body.id}`,
          }),
          expect.objectContaining({ action: 'device.provision', resource: `devices/${fx.deviceA.id}` }),
          expect.objectContaining({ action: 'role.create', resource: `roles/${fx.params.name}` }),
          expect.objectContaining({ action: 'auth.login', actor: `user:${email}` }),
        ]),
      );
      const times = (log.body.entries as { at: string }[]).map((e) => e.at);
      expect([...times].sort().reverse()).toEqual(times);

      const other = await fx.otherOrgAdmin.client.get('/north/v1/audit?limit=500');
      expect(other.status).toBe(200);
      expect(JSON.stringify(other.body)).not.toContain(fx.deviceA.id);
      expect((await operator.get('/north/v1/audit')).status).toBe(403);
    });
  });

  describe('with a second API process on the same inventory', () => {
    let second: TwinflowProcess;
    const there = (token: string, path: string) =>
      apiClient(second.baseUrl).get(path, { authorization: `Bearer ${token}` });
    /** How long after `since` a request there first answers `status` (ms). */
    const answersThere = async (token: string, path: string, status: number, since: number) => {
      await eventually(
        async () => ((await there(token, path)).status === status ? true : undefined),
        10_000,
        50,
      );
      return Date.now() - since;
    };

    beforeAll(async () => {
      second = await startTwinflow({
        roles: 'api',
        db: fx.tf.env.MONGODB_DB,
        taskQueue: fx.tf.env.TWINFLOW_TASK_QUEUE,
        adminKey: fx.tf.adminKey,
      });
    });

    afterAll(async () => {
      await second?.stop();
    });

    // Each first request there puts the user and session in its 5 s cache: only the announced change, read
    // there every second, makes the second process honour the change sooner.
    it('ends a session there within about a second of its logout here', async () => {
      const tokens = await fx.login(await newUser('viewer'));
      expect((await there(tokens.accessToken, '/north/v1/me')).status).toBe(200);
      const loggedOutAt = Date.now();
      expect(
        (await anonymous().post('/north/v1/auth/logout', { refreshToken: tokens.refreshToken })).status,
      ).toBe(204);
      expect(await answersThere(tokens.accessToken, '/north/v1/me', 401, loggedOutAt)).toBeLessThan(3_000);
    });

    it('applies a change to a custom role there within about a second', async () => {
      const name = `there-${Date.now().toString(36)}`;
      expect(
        (await fx.platform.client.post('/north/v1/roles', { name, permissions: ['devices:read'] })).status,
      ).toBe(201);
      const { accessToken } = await fx.login(await newUser(name));
      const operations = `/north/v1/devices/${fx.deviceA.id}/operations`;
      expect((await there(accessToken, operations)).status).toBe(403);
      const changedAt = Date.now();
      const changed = await fx.platform.client.request('PUT', `/north/v1/roles/${name}`, {
        permissions: ['devices:read', 'operations:read'],
      });
      expect(changed.status).toBe(200);
      expect(await answersThere(accessToken, operations, 200, changedAt)).toBeLessThan(3_000);
    });

    it('refuses there a user disabled here within about a second', async () => {
      const email = await newUser('viewer');
      const { accessToken } = await fx.login(email);
      expect((await there(accessToken, '/north/v1/me')).status).toBe(200);
      const disabledAt = Date.now();
      expect(
        (await fx.platform.client.patch(`/north/v1/users/${encodeURIComponent(email)}`, { disabled: true }))
          .status,
      ).toBe(200);
      expect(await answersThere(accessToken, '/north/v1/me', 401, disabledAt)).toBeLessThan(3_000);
    });
  });

  it('describes every route in the OpenAPI document, with its permission', async () => {
    const res = await anonymous().get('/north/v1/openapi.json');
    expect(res.status).toBe(200);
    for (const route of ROUTE_TABLE) {
      const path = route.path.replace(/:(\w+)/g, '{$1}');
      const op = res.body.paths[path]?.[route.method.toLowerCase()];
      expect({ route: `${route.method} ${route.path}`, found: op !== undefined }).toEqual({
        route: `${route.method} ${route.path}`,
        found: true,
      });
      expect(op['x-twinflow-access']).toBe(
        route.access.kind === 'action' ? route.access.action : route.access.kind,
      );
    }
    expect(
      res.body.paths['/north/v1/users'].post.requestBody.content['application/json'].schema.properties,
    ).toHaveProperty('password');
  });

  it('never writes a secret to its logs', async () => {
    const output = fx.tf.output();
    expect(output).not.toContain(PASSWORD);
    expect(output).not.toContain(fx.deviceA.key);
    expect(output).not.toMatch(/tfr_[\w-]{43}/);
    expect(output).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
  });
});
