// A populated deployment for the identity and security tests: two organizations, a user per role, a custom
// role, service keys, devices with their keys and an operation, and a digest of everything stored.
import { createHash, randomBytes } from 'node:crypto';
import type { MongoClient } from 'mongodb';
import { type ApiClient, apiClient, eventually, startTwinflow, type TwinflowProcess } from './harness';

export const PASSWORD = 'correct horse battery staple';

export interface Actor {
  readonly name: string;
  /** The role whose permissions this actor has (built-in or the fixture's custom role). */
  readonly role: string;
  readonly permissions: ReadonlySet<string>;
  readonly client: ApiClient;
  readonly headers: Record<string, string>;
}

export interface Fixture {
  readonly tf: TwinflowProcess;
  readonly orgA: string;
  readonly orgB: string;
  /** Every way into org A, one per role, plus a service key and org B's admin. */
  readonly platform: Actor;
  readonly actors: readonly Actor[];
  readonly otherOrgAdmin: Actor;
  readonly deviceA: { id: string; key: string };
  readonly deviceA2: { id: string; key: string };
  readonly deviceB: { id: string; key: string };
  /** Values for the route table's path parameters: real resources of org A. */
  readonly params: Readonly<Record<string, string>>;
  login(email: string, password?: string): Promise<{ accessToken: string; refreshToken: string }>;
  bearer(token: string): ApiClient;
}

const rand = () => randomBytes(3).toString('hex');

export async function setUpFixture(): Promise<Fixture> {
  const tf = await startTwinflow();
  const platformClient = apiClient(tf.baseUrl, tf.adminKey);
  const ok = async (p: Promise<{ status: number; body: any }>, status: number) => {
    const res = await p;
    if (res.status !== status)
      throw new Error(`fixture: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  const bearer = (token: string): ApiClient => {
    const c = apiClient(tf.baseUrl);
    const withAuth = (h?: Record<string, string>) => ({ authorization: `Bearer ${token}`, ...h });
    return {
      request: (m, p, b, h) => c.request(m, p, b, withAuth(h)),
      get: (p, h) => c.get(p, withAuth(h)),
      post: (p, b, h) => c.post(p, b, withAuth(h)),
      patch: (p, b, h) => c.patch(p, b, withAuth(h)),
      delete: (p, h) => c.delete(p, withAuth(h)),
    };
  };
  const login = async (email: string, password = PASSWORD) =>
    ok(apiClient(tf.baseUrl).post('/north/v1/auth/login', { email, password }), 200);

  const me = await ok(platformClient.get('/north/v1/me'), 200);
  const orgA = me.org as string;
  const orgB = `org-b-${rand()}`;
  const suffix = rand();

  const customRole = `auditor-${suffix}`;
  await ok(
    platformClient.post('/north/v1/roles', { name: customRole, permissions: ['audit:read', 'devices:read'] }),
    201,
  );

  const roles = ['org-admin', 'operator', 'viewer', customRole];
  const userActors: Actor[] = [];
  const roleDocs = await ok(platformClient.get('/north/v1/roles'), 200);
  const permissionsOf = (role: string): ReadonlySet<string> =>
    new Set(
      (roleDocs.roles as { name: string; permissions: string[] }[]).find((r) => r.name === role)?.permissions,
    );
  for (const role of roles) {
    const email = `${role}-${suffix}@a.example`;
    await ok(platformClient.post('/north/v1/users', { email, password: PASSWORD, role }), 201);
    const tokens = await login(email);
    userActors.push({
      name: `user ${role}`,
      role,
      permissions: permissionsOf(role),
      client: bearer(tokens.accessToken),
      headers: { authorization: `Bearer ${tokens.accessToken}` },
    });
  }
  const serviceKey = await ok(
    platformClient.post('/north/v1/keys', { name: 'dashboards', role: 'viewer' }),
    201,
  );
  const platform: Actor = {
    name: 'platform admin key',
    role: 'platform-admin',
    permissions: permissionsOf('platform-admin'),
    client: platformClient,
    headers: { 'X-ApiKey': tf.adminKey },
  };
  const actors: Actor[] = [
    platform,
    ...userActors,
    {
      name: 'service key viewer',
      role: 'viewer',
      permissions: permissionsOf('viewer'),
      client: apiClient(tf.baseUrl, serviceKey.apiKey),
      headers: { 'X-ApiKey': serviceKey.apiKey },
    },
  ];

  const adminB = `admin-${suffix}@b.example`;
  await ok(
    platformClient.post('/north/v1/organizations', {
      id: orgB,
      name: 'Org B',
      admin: { email: adminB, password: PASSWORD },
    }),
    201,
  );
  const tokensB = await login(adminB);
  const otherOrgAdmin: Actor = {
    name: 'org B admin',
    role: 'org-admin',
    permissions: permissionsOf('org-admin'),
    client: bearer(tokensB.accessToken),
    headers: { authorization: `Bearer ${tokensB.accessToken}` },
  };

  const provision = async (client: ApiClient, id: string) => {
    const body = await ok(client.post('/north/v1/devices', { id, transport: { sleepy: true } }), 201);
    return { id, key: body.apiKey as string };
  };
  const deviceA = await provision(platformClient, `dev-a-${suffix}`);
  const deviceA2 = await provision(platformClient, `dev-a2-${suffix}`);
  const deviceB = await provision(otherOrgAdmin.client, `dev-b-${suffix}`);
  const op = await ok(
    platformClient.post(`/north/v1/devices/${deviceA.id}/operations`, { name: 'REFRESH_INFO' }),
    202,
  );
  // A job in organization A, running until the security suite ends: its sleepy device never polls.
  const job = await ok(
    platformClient.post('/north/v1/jobs', {
      operation: { name: 'REFRESH_INFO' },
      target: { deviceIds: [deviceA2.id] },
    }),
    202,
  );
  await eventually(async () => {
    const view = await ok(platformClient.get(`/north/v1/jobs/${job.id as string}`), 200);
    return view.counts?.STARTED === 1 ? true : undefined;
  }, 30_000);
  const schedule = await ok(
    platformClient.post('/north/v1/job-schedules', {
      job: { operation: { name: 'REFRESH_INFO' }, target: { deviceIds: [deviceA2.id] } },
      schedule: { at: Date.now() + 365 * 86_400_000 },
    }),
    201,
  );
  const keys = await ok(platformClient.get('/north/v1/keys?kind=service'), 200);
  const fn = await ok(
    platformClient.post('/north/v1/functions', {
      name: `fixture-fn-${suffix}`,
      source: 'function transform(p) { return [{ id: "temperature", value: p.t }]; }',
      criteria: { httpPath: 'vendor' },
      mode: 'TEST',
    }),
    201,
  );

  return {
    tf,
    orgA,
    orgB,
    platform,
    actors,
    otherOrgAdmin,
    deviceA,
    deviceA2,
    deviceB,
    params: {
      deviceId: deviceA.id,
      operationId: op.id as string,
      jobId: job.id as string,
      scheduleId: schedule.id as string,
      email: `viewer-${suffix}@a.example`,
      name: customRole,
      keyId: (keys.keys as { keyId: string }[])[0]?.keyId ?? 'tfk_00000000',
      orgId: orgA,
      datastreamId: 'temperature',
      functionName: fn.name as string,
      suffix: 'vendor',
    },
    login,
    bearer,
  };
}

/** Bodies that would succeed, so that a refusal is the guard's or the lookup's doing, not validation's. */
export const VALID_BODIES: Record<string, unknown> = {
  'PATCH /north/v1/users/:email': { name: 'Renamed' },
  'PUT /north/v1/roles/:name': { permissions: ['devices:read'] },
  'POST /north/v1/devices/:deviceId/operations': { name: 'REFRESH_INFO' },
  'POST /north/v1/jobs': { operation: { name: 'REFRESH_INFO' }, target: { deviceIds: ['would-be-target'] } },
  'POST /north/v1/jobs/:jobId/rate': { maxInFlight: 5 },
  'POST /north/v1/job-schedules': {
    job: { operation: { name: 'REFRESH_INFO' }, target: { deviceIds: ['would-be-target'] } },
    schedule: { everyMs: 3_600_000 },
  },
  'POST /north/v80/operation/jobs': {
    job: { request: { name: 'REFRESH_INFO', target: { append: { entities: ['would-be-target'] } } } },
  },
  'PATCH /north/v1/devices/:deviceId': { name: 'Renamed' },
  'POST /north/v1/devices': { id: 'would-be-created' },
  'POST /north/v1/users': { email: 'would-be@a.example', password: 'a long enough password', role: 'viewer' },
  'POST /north/v1/roles': { name: 'would-be-role', permissions: ['devices:read'] },
  'POST /north/v1/keys': { name: 'would-be key', role: 'viewer' },
  'POST /north/v1/organizations': { id: 'would-be-org', name: 'Would be' },
  'PUT /north/v1/functions/:functionName': {
    source: 'function transform(p) { return []; }',
    criteria: { httpPath: 'vendor' },
    mode: 'TEST',
  },
  'POST /north/v1/functions/:functionName/test': { payload: { t: 1 } },
  'POST /north/v1/certificate-authorities': { name: 'would-be CA', managed: true },
  'PUT /north/v1/devices/:deviceId/credential-policy': { certificatesOnly: true },
  // Passes the schema; the certificate itself is read only after the device is found.
  'POST /north/v1/devices/:deviceId/certificates': { certificate: '-'.repeat(64) },
  'POST /north/v1/devices/:deviceId/certificates/:fingerprint/rotate': { csr: '-'.repeat(64) },
};

/** Ids that exist nowhere: a request the guard lets through then fails on them, changing nothing. */
export const MISSING: Record<string, string> = {
  deviceId: 'no-such-device',
  operationId: '00000000-0000-4000-8000-000000000000',
  jobId: '0000000aa-00000000aa',
  scheduleId: 's0000000aa-00000000aa',
  email: 'nobody@nowhere.example',
  name: 'no-such-role',
  keyId: 'tfk_00000000',
  orgId: 'no-such-org',
  datastreamId: 'nothing',
  functionName: 'no-such-function',
  suffix: 'no-such-suffix',
  caId: '0'.repeat(64),
  fingerprint: '0'.repeat(64),
};

/** Fills a route's path parameters. */
export const fillPath = (path: string, params: Readonly<Record<string, string>>): string =>
  path.replace(/:(\w+)/g, (_m, name: string) => encodeURIComponent(params[name] ?? `unknown-${name}`));

/**
 * A digest of what the deployment stores that requests could change. The audit log, sessions and refresh
 * tokens are left out: refused logins are audited, and logging in is not a change to the fleet.
 */
export async function stateDigest(mongo: MongoClient, db: string): Promise<Record<string, string>> {
  const d = mongo.db(db);
  const digest = async (name: string, project: (doc: Record<string, unknown>) => unknown) => {
    const docs = await d.collection(name).find({}).sort({ _id: 1 }).toArray();
    const hash = createHash('sha256');
    for (const doc of docs) hash.update(JSON.stringify(project(doc)));
    return `${docs.length}:${hash.digest('hex').slice(0, 16)}`;
  };
  const whole = (doc: Record<string, unknown>) => doc;
  const [
    organizations,
    users,
    roles,
    apiKeys,
    devices,
    operations,
    jobs,
    datapoints,
    functions,
    authorities,
    certificates,
    policies,
    alarms,
  ] = await Promise.all([
    digest('organizations', whole),
    digest('users', whole),
    digest('roles', whole),
    digest('api_keys', whole),
    // The twin's snapshot and seen times move on their own; the record's identity and lifecycle must not.
    digest('devices', ({ twin: _t, latest: _l, lastSeenAt: _s, ...rest }) => rest),
    digest('operations', (doc) => [doc._id, doc.status]),
    // A running job rewrites its progress; what it is and what it targets must not change.
    digest('jobs', ({ progress: _p, status: _s, updatedAt: _u, ...rest }) => rest),
    digest('datapoints', (doc) => doc._id),
    digest('functions', whole),
    digest('certificate_authorities', whole),
    digest('device_certificates', whole),
    digest('credential_policies', whole),
    // Acknowledging or clearing an alarm changes its document.
    digest('alarms', whole),
  ]);
  return {
    organizations,
    users,
    roles,
    apiKeys,
    devices,
    operations,
    jobs,
    datapoints,
    functions,
    authorities,
    certificates,
    policies,
    alarms,
  };
}
