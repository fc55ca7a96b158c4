// Generated bad input against the running API: at least 10,000 requests built from the route table (path
// tricks, query operator injection, malformed and oversized bodies, wrong types field by field, forged and
// expired tokens, reused refresh tokens). None may answer 5xx, the process must stay up, nothing may change.
import type { MongoClient } from 'mongodb';
import { SignJWT } from 'jose';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { ROUTE_TABLE } from '../../api/app';
import type { RouteEntry } from '../../api/access/route-group';
import { type Fixture, fillPath, MISSING, setUpFixture, stateDigest, VALID_BODIES } from './identity-fixture';
import { mongoClient } from './harness';

jest.setTimeout(600_000);

interface Case {
  readonly family: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string | Uint8Array;
  /** Oversized bodies: the server may close the connection before the client finishes sending. */
  readonly mayCloseEarly?: boolean;
}

/** A small seeded generator, so that a failing case can be found again. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PATH_TRICKS = [
  '..',
  '%2e%2e',
  '..%2f..%2fadmin',
  '%2F',
  '%00',
  'a%00b',
  'x'.repeat(5_000),
  '%ff%fe',
  '%24gt',
  encodeURIComponent('{"$gt":""}'),
  encodeURIComponent('{"$ne":null}'),
  '*',
  '%20',
  '.',
  encodeURIComponent('😀'),
  '%252e%252e',
  '%5C..%5C',
  'null',
  'undefined',
  '__proto__',
  'constructor',
  encodeURIComponent("' OR 1=1 --"),
  encodeURIComponent('<script>alert(1)</script>'),
  encodeURIComponent('a/b'),
  encodeURIComponent('a b'),
  '-',
  'tfk_',
  encodeURIComponent('org/other'),
];

const QUERY_TRICKS = [
  'limit[$gt]=0',
  'limit=-1',
  'limit=1e999',
  'limit=NaN',
  'limit=0x10',
  'cursor=%00',
  'cursor[$ne]=x',
  '__proto__[admin]=1',
  'constructor[prototype][admin]=1',
  'limit=1&limit=2',
  'kind[$regex]=.*',
  'status[$in][]=x',
  'waitMs=99999999',
  'waitMs=-5',
  'from=2&to=1',
  `cursor=${'A'.repeat(10_000)}`,
  'action=%24where',
  'deviceId[$exists]=true',
  'includeRevoked=maybe',
  '%=%',
];

const MALFORMED_BODIES: (string | Uint8Array)[] = [
  '{',
  '{"a":',
  '[',
  '"text"',
  '123',
  'null',
  'true',
  '[]',
  '{}',
  '   ',
  '{"__proto__":{"admin":true}}',
  '{"constructor":{"prototype":{"admin":true}}}',
  `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
  `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`,
  new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
  `\ufeff{"name":`,
  '{"a":1,"a":2}',
  '{"$where":"sleep(1000)"}',
  '{"id":{"$gt":""}}',
  '{"email":{"$ne":null},"password":{"$ne":null}}',
  '1e400',
  '{"n":1e400}',
  `"${'x'.repeat(100_000)}"`,
  '{"id":"\\u0000"}',
  'NaN',
];

/** Values of the wrong type for a field of the given JSON-schema type. */
const WRONG_FOR: Record<string, unknown[]> = {
  string: [1, true, [], {}, { $gt: '' }, { $ne: null }, ['a'], 1.5],
  number: ['1', true, [], {}, { $gt: 0 }, 'NaN', [1]],
  integer: ['1', true, [], {}, { $gt: 0 }, 1.5, [1]],
  boolean: ['true', 1, {}, [], { $ne: false }],
  array: ['x', 1, {}, { $in: [] }, true],
  object: ['x', 1, [], true, 'null'],
};

function schemaOf(
  route: RouteEntry,
): { properties?: Record<string, { type?: string | string[] }>; additionalProperties?: unknown } | undefined {
  if (!route.doc.body) return undefined;
  const toJson = zodToJsonSchema as unknown as (s: unknown, o: object) => Record<string, unknown>;
  return toJson(route.doc.body, { $refStrategy: 'none' });
}

describe('generated bad input', () => {
  let fx: Fixture;
  let mongo: MongoClient;
  let before: Record<string, string>;
  const cases: Case[] = [];

  beforeAll(async () => {
    fx = await setUpFixture();
    mongo = await mongoClient();
    const rand = prng(20261123);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
    const admin = fx.platform.headers;
    const json = { 'content-type': 'application/json' };

    // Forged, expired and broken credentials.
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = {
      sub: fx.params.email,
      org: fx.orgA,
      sid: 'a'.repeat(32),
      iss: 'twinflow',
      aud: 'twinflow-api',
      iat: now,
      exp: now + 600,
    };
    const secret = await mongo
      .db(fx.tf.env.MONGODB_DB as string)
      .collection<{ _id: string; value: string }>('settings')
      .findOne({ _id: 'jwt-secret' });
    const realKey = new TextEncoder().encode(secret?.value ?? '');
    const signed = (alg: string, c: Record<string, unknown>, key = realKey) =>
      new SignJWT(c).setProtectedHeader({ alg }).sign(key);
    const tokens = [
      `${b64({ alg: 'none' })}.${b64(claims)}.`,
      `${b64({ alg: 'NONE' })}.${b64(claims)}.`,
      `${b64({ alg: 'HS256' })}.${b64(claims)}.`,
      await signed('HS256', claims, new TextEncoder().encode('k'.repeat(40))),
      await signed('HS512', claims),
      await signed('HS256', { ...claims, exp: now - 100 }),
      await signed('HS256', { ...claims, nbf: now + 3_600 }),
      await signed('HS256', { ...claims, iss: 'someone-else' }),
      await signed('HS256', { ...claims, aud: 'another-api' }),
      await signed('HS256', { ...claims, org: fx.orgB }),
      await signed('HS256', { ...claims, sub: { $ne: null } }),
      await signed('HS256', { ...claims, sub: 'x'.repeat(3_000) }),
      `${b64({ alg: 'RS256', jku: 'http://127.0.0.1:1/keys' })}.${b64(claims)}.c2ln`,
      `${b64({ alg: 'HS256', kid: '../../dev/null' })}.${b64(claims)}.c2ln`,
      'a.b.c',
      '..',
      'e30.e30.',
      'x'.repeat(5_000),
    ];
    const authVariants: Record<string, string>[] = [
      ...tokens.map((t) => ({ authorization: `Bearer ${t}` })),
      { authorization: 'Bearer' },
      { authorization: 'bearer x.y.z' },
      { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` },
      { 'X-ApiKey': '' },
      { 'X-ApiKey': 'x'.repeat(10_000) },
      { 'X-ApiKey': 'tfk_00000000_' + 'A'.repeat(43) },
      { 'X-ApiKey': encodeURIComponent('{"$ne":null}') },
      { 'X-ApiKey': fx.deviceB.key },
    ];

    for (const route of ROUTE_TABLE) {
      const realPath = fillPath(route.path, fx.params);
      const missingPath = fillPath(route.path, MISSING);
      const params = [...route.path.matchAll(/:(\w+)/g)].map((m) => m[1] as string);
      const add = (c: Omit<Case, 'method'>) => cases.push({ method: route.method, ...c });
      const body = (b: unknown) => (route.method === 'GET' ? undefined : JSON.stringify(b));

      for (const headers of authVariants)
        add({
          family: 'credential',
          path: realPath,
          headers: { ...headers, ...json },
          body: body(VALID_BODIES[`${route.method} ${route.path}`] ?? {}),
        });
      for (const name of params) {
        for (const trick of PATH_TRICKS) {
          const path = fillPath(route.path, { ...MISSING, [name]: '\u0001' }).replace(
            encodeURIComponent('\u0001'),
            trick,
          );
          add({ family: 'path', path, headers: { ...admin, ...json }, body: body({ probe: true }) });
        }
      }
      for (const q of QUERY_TRICKS)
        add({
          family: 'query',
          path: `${missingPath}?${q}`,
          headers: { ...admin, ...json },
          body: body({ probe: true }),
        });
      if (route.method === 'GET') continue;

      // A route that takes no body would act on a real resource whatever the body says: it gets missing ones.
      const target = route.doc.body ? realPath : missingPath;
      for (const raw of MALFORMED_BODIES) {
        add({ family: 'malformed body', path: missingPath, headers: { ...admin, ...json }, body: raw });
        add({ family: 'malformed body', path: target, headers: { ...admin, ...json }, body: raw });
      }
      for (const type of [
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
      ]) {
        add({
          family: 'content type',
          path: target,
          headers: { ...admin, 'content-type': type },
          body: '{"name":"REFRESH_INFO"}',
        });
      }
      const limit = route.path.startsWith('/south/') ? 1024 * 1024 : 4 * 1024 * 1024;
      add({
        family: 'oversized',
        path: target,
        headers: { ...admin, ...json },
        body: `{"x":"${'y'.repeat(limit)}"}`,
        mayCloseEarly: true,
      });

      // Wrong types, one field at a time, on an otherwise valid body.
      const schema = schemaOf(route);
      const base = (VALID_BODIES[`${route.method} ${route.path}`] ?? {}) as Record<string, unknown>;
      for (const [field, prop] of Object.entries(schema?.properties ?? {})) {
        const type = Array.isArray(prop.type) ? undefined : prop.type;
        for (const wrong of (type && WRONG_FOR[type]) ?? []) {
          add({
            family: 'wrong type',
            path: realPath,
            headers: { ...admin, ...json },
            body: JSON.stringify({ ...base, [field]: wrong }),
          });
          add({
            family: 'wrong type',
            path: missingPath,
            headers: { ...admin, ...json },
            body: JSON.stringify({ ...base, [field]: wrong }),
          });
        }
      }
      if (schema?.additionalProperties === false) {
        for (const extra of ['$where', '__proto__', 'org', 'role', '_id', 'constructor']) {
          add({
            family: 'extra field',
            path: realPath,
            headers: { ...admin, ...json },
            body: JSON.stringify({ ...base, [extra]: { $gt: '' } }),
          });
        }
      }
    }

    // Reused refresh tokens: each spent token tried again, many times.
    const login = await fx.login(fx.params.email as string);
    for (let i = 0; i < 50; i++) {
      cases.push({
        family: 'reused refresh token',
        method: 'POST',
        path: '/north/v1/auth/refresh',
        headers: json,
        body: JSON.stringify({ refreshToken: login.refreshToken }),
      });
    }
    // Top up to the target with random mixes of the families above, reproducibly.
    const base = cases.length;
    while (cases.length < 12_000) {
      const route = pick(ROUTE_TABLE);
      const withTrick = fillPath(route.path, MISSING).replace(/[^/]+$/, pick(PATH_TRICKS));
      const path = route.path.includes(':') && rand() < 0.5 ? withTrick : fillPath(route.path, MISSING);
      const query = rand() < 0.5 ? `?${pick(QUERY_TRICKS)}` : '';
      const headers = rand() < 0.3 ? { ...pick(authVariants), ...json } : { ...admin, ...json };
      const body = route.method === 'GET' ? undefined : pick(MALFORMED_BODIES);
      cases.push({
        family: 'random mix',
        method: route.method,
        path: `${path}${query}`,
        headers,
        ...(body !== undefined ? { body } : {}),
      });
    }
    expect(base).toBeGreaterThan(4_000);
    before = await stateDigest(mongo, fx.tf.env.MONGODB_DB as string);
  });

  afterAll(async () => {
    await mongo?.close();
    await fx?.tf.stop();
  });

  it('answers every case without a 5xx, stays up and changes nothing', async () => {
    expect(cases.length).toBeGreaterThanOrEqual(10_000);
    const failures: string[] = [];
    const statuses = new Map<number | string, number>();
    let refreshed = 0;
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++] as Case;
        let status: number | string;
        try {
          const res = await fetch(`${fx.tf.baseUrl}${c.path}`, {
            method: c.method,
            headers: c.headers,
            ...(c.body !== undefined ? { body: c.body } : {}),
          });
          status = res.status;
          // A live stream that opened never ends: its status is the answer.
          const streaming = res.headers.get('content-type')?.startsWith('text/event-stream');
          if (streaming) await res.body?.cancel();
          const text = streaming ? '' : await res.text();
          if (status >= 400 && !text.includes('"error"'))
            failures.push(`${c.family} ${c.method} ${c.path.slice(0, 120)}: ${status} without an error body`);
        } catch (err) {
          status = c.mayCloseEarly
            ? 'closed early'
            : `network error ${(err as Error).message} ${String((err as { cause?: unknown }).cause)}`;
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (c.family === 'reused refresh token' && status === 200) refreshed += 1;
        if (typeof status === 'string' ? status.startsWith('network') : status >= 500) {
          failures.push(`${c.family} ${c.method} ${c.path.slice(0, 120)}: ${status}`);
        }
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: 16 }, worker));
    const seconds = (Date.now() - started) / 1000;
    // Shown so that a run's spread of answers can be read in the log.
    console.log(
      `${cases.length} bad-input cases in ${seconds.toFixed(1)} s:`,
      Object.fromEntries([...statuses].sort((a, b) => String(a[0]).localeCompare(String(b[0])))),
    );
    if (failures.length > 0) {
      console.log(
        fx.tf
          .output()
          .split('\n')
          .filter((l) => l.includes('request failed'))
          .slice(0, 5)
          .join('\n'),
      );
    }
    expect(failures.slice(0, 20)).toEqual([]);
    // Fifty uses of one refresh token, many at once: exactly one wins.
    expect(refreshed).toBe(1);
    expect((await fetch(`${fx.tf.baseUrl}/healthz`)).status).toBe(200);
    expect((await fx.platform.client.get(`/north/v1/devices/${fx.deviceA.id}`)).status).toBe(200);
    expect(await stateDigest(mongo, fx.tf.env.MONGODB_DB as string)).toEqual(before);
  });
});
