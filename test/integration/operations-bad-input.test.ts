// Bad input on every operations route: the right 4xx, the one error shape, and nothing requested, handed
// over, answered or changed (MongoDB documents, the twins' operation tables, Temporal workflows).
import http from 'node:http';
import type { Client } from '@temporalio/client';
import type { MongoClient } from 'mongodb';
import { operationWorkflowId, twinWorkflowId } from '../../workflows/ids';
import { getOperationQuery } from '../../workflows/operation.messages';
import { getTwinStateQuery } from '../../workflows/twin.messages';
import {
  type ApiClient,
  type ApiResponse,
  type TwinflowProcess,
  apiClient,
  eventually,
  mongoClient,
  startTwinflow,
  temporalClient,
  uniqueName,
} from './harness';

const UNKNOWN_OP = '00000000-0000-4000-8000-000000000000';
const FAKE_KEY = 'tfk_00000000_not-a-real-key-at-all';
/** The electricity meter's catalogue, as its twin type declares it. */
const METER_OPERATIONS = [
  'DISCONNECT_SUPPLY',
  'GET_DEVICE_PARAMETERS',
  'READ_METER',
  'REBOOT_EQUIPMENT',
  'RECONNECT_SUPPLY',
  'REFRESH_INFO',
  'SET_CLOCK_EQUIPMENT',
  'SET_DEVICE_PARAMETERS',
  'SET_POWER_LIMIT',
  'UPDATE',
];

/**
 * POSTs with node:http and answers as soon as the server does. With declaredBytes, the request announces
 * that length but sends only `body`, so the answer cannot depend on how much of an upload got through.
 */
function rawPost(
  url: string,
  key: string,
  body: string,
  options: { declaredBytes?: number } = {},
): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(
      url,
      {
        method: 'POST',
        headers: {
          'X-ApiKey': key,
          'content-type': 'application/json',
          'content-length': String(options.declaredBytes ?? Buffer.byteLength(body)),
        },
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          req.destroy();
          const text = Buffer.concat(chunks).toString('utf8');
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
          }
          let parsed: unknown = text;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers });
        });
      },
    );
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    if (options.declaredBytes === undefined) req.end(body);
    else req.write(body);
  });
}

const deviceName = (prefix: string): string => uniqueName(prefix).replace(/_/g, '-');

describe('operations bad input', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let anonymous: ApiClient;
  let mongo: MongoClient;
  let temporal: { client: Client; close(): Promise<void> };

  /** Generic type, no push channel (so treated as sleepy); holds one cancelled operation. */
  const gen = deviceName('gen');
  /** electricity-meter type, no operation ever accepted. */
  const meter = deviceName('meter');
  /** Sleepy device with one operation waiting for its poll. */
  const sleepy = deviceName('sleepy');
  /** Another device, for keys and operations that belong elsewhere. */
  const other = deviceName('other');
  /** Decommissioned. */
  const gone = deviceName('gone');
  /** The twins whose operation tables must never change. */
  const liveTwins = [gen, meter, sleepy, other];

  let genKey: string;
  let sleepyKey: string;
  let otherKey: string;
  let waitingOp: string;
  let endedOp: string;

  /** Counts, every operation record, and the operation table of every live twin. */
  async function snapshot() {
    const db = mongo.db(tf.env.MONGODB_DB);
    const [operations, devices, datapoints, keys, records] = await Promise.all([
      db.collection('operations').countDocuments(),
      db.collection('devices').countDocuments(),
      db.collection('datapoints').countDocuments(),
      db.collection('api_keys').countDocuments(),
      db.collection('operations').find({}).sort({ _id: 1 }).toArray(),
    ]);
    const tables = await Promise.all(
      liveTwins.map(async (id) => {
        const state = await temporal.client.workflow
          .getHandle(twinWorkflowId('default', id))
          .query(getTwinStateQuery);
        return [id, state.operations] as const;
      }),
    );
    return {
      counts: { operations, devices, datapoints, keys },
      records: JSON.parse(JSON.stringify(records)) as unknown,
      twinOperations: Object.fromEntries(tables),
    };
  }

  /** Sends the request; it must be refused with the status and code, and change nothing. */
  async function expectRefused(
    send: () => Promise<ApiResponse>,
    status: number,
    code: string,
  ): Promise<ApiResponse> {
    const before = await snapshot();
    const res = await send();
    const after = await snapshot();
    // One comparison, so that a failure shows the answer and any change together.
    expect({ status: res.status, body: res.body, state: after }).toEqual({
      status,
      body: {
        error: expect.objectContaining({
          code,
          message: expect.any(String),
          requestId: expect.any(String),
        }),
      },
      state: before,
    });
    expect(res.headers.get('x-request-id')).toBe(res.body.error.requestId);
    return res;
  }

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    anonymous = apiClient(tf.baseUrl);
    mongo = await mongoClient();
    temporal = await temporalClient();

    const provision = async (body: Record<string, unknown>): Promise<string> => {
      const res = await admin.post('/north/v1/devices', body);
      expect(res.status).toBe(201);
      return res.body.apiKey as string;
    };
    genKey = await provision({ id: gen });
    await provision({ id: meter, type: 'electricity-meter' });
    sleepyKey = await provision({ id: sleepy, transport: { sleepy: true } });
    otherKey = await provision({ id: other, transport: { sleepy: true } });
    await provision({ id: gone });
    expect((await admin.delete(`/north/v1/devices/${gone}`)).status).toBe(200);

    const waiting = await admin.post(`/north/v1/devices/${sleepy}/operations`, {
      name: 'REBOOT_EQUIPMENT',
      parameters: { type: 'SOFTWARE' },
    });
    expect(waiting.status).toBe(202);
    expect(waiting.body).toMatchObject({ status: 'WAITING_FOR_CONNECTION', delivery: 'pending' });
    waitingOp = waiting.body.id;

    const toEnd = await admin.post(`/north/v1/devices/${gen}/operations`, { name: 'REFRESH_INFO' });
    expect(toEnd.status).toBe(202);
    endedOp = toEnd.body.id;
    const cancelled = await admin.post(`/north/v1/operations/${endedOp}/cancel`);
    expect(cancelled.body.status).toBe('CANCELLED');

    // Let the workflows write their last revisions, so that any later change is the test's doing: the
    // cancelled operation's workflow has completed (it writes its record before it returns), its twin has
    // taken the end, and the waiting operation's stored record is its live one.
    const db = mongo.db(tf.env.MONGODB_DB);
    const opHandle = (deviceId: string, id: string) =>
      temporal.client.workflow.getHandle(operationWorkflowId('default', deviceId, id));
    await eventually(
      async () => {
        const ended = await opHandle(gen, endedOp).describe();
        const genTable = (
          await temporal.client.workflow.getHandle(twinWorkflowId('default', gen)).query(getTwinStateQuery)
        ).operations;
        const live = await opHandle(sleepy, waitingOp).query(getOperationQuery);
        const stored = await db
          .collection<{ _id: string; rev: number; status: string }>('operations')
          .find({})
          .toArray();
        const storedWaiting = stored.find((r) => r.status === 'WAITING_FOR_CONNECTION');
        const statuses = stored.map((r) => r.status).sort();
        const settled =
          ended.status.name === 'COMPLETED' &&
          genTable.open.length === 0 &&
          genTable.recentlyEnded.includes(endedOp) &&
          storedWaiting?.rev === live.rev &&
          JSON.stringify(statuses) === JSON.stringify(['CANCELLED', 'WAITING_FOR_CONNECTION']);
        return settled ? true : undefined;
      },
      30_000,
      200,
    );
  });

  afterAll(async () => {
    if (process.env.TWINFLOW_IT_SHOW_OUTPUT) console.log(tf?.output());
    await temporal?.close();
    await mongo?.close();
    await tf?.stop();
  });

  describe('POST /north/v1/devices/{id}/operations', () => {
    const path = (deviceId: string) => `/north/v1/devices/${deviceId}/operations`;
    const good = { name: 'REFRESH_INFO' };

    it('answers 401 without a key, with an unknown key, and with the key only in the query', async () => {
      await expectRefused(() => anonymous.post(path(gen), good), 401, 'UNAUTHENTICATED');
      await expectRefused(
        () => apiClient(tf.baseUrl, FAKE_KEY).post(path(gen), good),
        401,
        'UNAUTHENTICATED',
      );
      await expectRefused(
        () => anonymous.post(`${path(gen)}?X-ApiKey=${tf.adminKey}`, good),
        401,
        'UNAUTHENTICATED',
      );
    });

    it('answers 403 to a device key, even for its own device', async () => {
      await expectRefused(
        () => apiClient(tf.baseUrl, genKey).post(path(gen), good),
        403,
        'PERMISSION_DENIED',
      );
    });

    it('answers 404 for an unknown device and for device ids of a bad shape', async () => {
      await expectRefused(() => admin.post(path('nobody-here'), good), 404, 'NOT_FOUND');
      for (const bad of ['-dash-first', '..%2F..%2Fetc', '%24ne', 'a%20b', 'x'.repeat(129)]) {
        await expectRefused(() => admin.post(path(bad), good), 404, 'NOT_FOUND');
      }
    });

    it('answers 409 for a decommissioned device', async () => {
      await expectRefused(() => admin.post(path(gone), good), 409, 'CONFLICT');
    });

    it.each([
      '?waitMs=-1',
      '?waitMs=60001',
      '?waitMs=abc',
      '?waitMs=1&waitMs=2',
      '?wait=1',
      '?waitMs[$gt]=0',
    ])('answers 400 to a bad query %s before queueing anything', async (query) => {
      await expectRefused(() => admin.post(`${path(gen)}${query}`, good), 400, 'INVALID_ARGUMENT');
    });

    it('answers 400 to malformed JSON and to an empty body', async () => {
      await expectRefused(() => admin.post(path(gen), '{"name": "REFRESH_INFO"'), 400, 'BAD_REQUEST');
      await expectRefused(
        () => admin.request('POST', path(gen), undefined, { 'content-type': 'application/json' }),
        400,
        'BAD_REQUEST',
      );
      await expectRefused(() => admin.post(path(gen), '   '), 400, 'BAD_REQUEST');
    });

    it('answers 415 to a body that is not JSON', async () => {
      await expectRefused(
        () =>
          admin.post(path(gen), 'name=REFRESH_INFO', { 'content-type': 'application/x-www-form-urlencoded' }),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      );
      await expectRefused(
        () => admin.post(path(gen), JSON.stringify(good), { 'content-type': 'text/plain' }),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      );
    });

    it.each<[string, unknown]>([
      ['an unknown field (strict)', { name: 'REFRESH_INFO', priority: 1 }],
      ['no name', { parameters: {} }],
      ['a lower-case name', { name: 'refresh_info' }],
      ['a name of 65 characters', { name: `A${'B'.repeat(64)}` }],
      ['a name that starts with $', { name: '$where' }],
      ['an empty name', { name: '' }],
      ['a name with a space', { name: 'REFRESH INFO' }],
      ['a numeric name', { name: 7 }],
      ['an operator as the name', { name: { $ne: null } }],
      ['a list as the name', { name: ['REFRESH_INFO'] }],
      ['parameters as a string', { name: 'REFRESH_INFO', parameters: 'type=HARDWARE' }],
      ['parameters as a number', { name: 'REFRESH_INFO', parameters: 5 }],
      ['parameters as a boolean', { name: 'REFRESH_INFO', parameters: true }],
      [
        'a legacy parameter list with a duplicate name',
        {
          name: 'REBOOT_EQUIPMENT',
          parameters: [
            { name: 'type', value: { string: 'HARDWARE' } },
            { name: 'type', value: { string: 'SOFTWARE' } },
          ],
        },
      ],
      ['a legacy parameter list item without a name', { name: 'A', parameters: [{ value: 1 }] }],
      ['a legacy parameter list of numbers', { name: 'A', parameters: [1, 2] }],
      ['a legacy parameter named __proto__', { name: 'A', parameters: [{ name: '__proto__', value: 1 }] }],
      [
        'a legacy parameter list of 257 items',
        { name: 'A', parameters: Array.from({ length: 257 }, (_, i) => ({ name: `p${i}`, value: i })) },
      ],
      ['timeoutMs 0', { name: 'REFRESH_INFO', timeoutMs: 0 }],
      ['timeoutMs -1', { name: 'REFRESH_INFO', timeoutMs: -1 }],
      ['timeoutMs 1e12', { name: 'REFRESH_INFO', timeoutMs: 1e12 }],
      ['timeoutMs as a string', { name: 'REFRESH_INFO', timeoutMs: '100' }],
      ['timeoutMs not an integer', { name: 'REFRESH_INFO', timeoutMs: 1000.5 }],
      ['timeoutMs as an operator', { name: 'REFRESH_INFO', timeoutMs: { $gt: 0 } }],
      ['ttlMs 99', { name: 'REFRESH_INFO', ttlMs: 99 }],
      ['ttlMs over 30 days', { name: 'REFRESH_INFO', ttlMs: 31 * 24 * 3_600_000 }],
      ['retries 11', { name: 'REFRESH_INFO', retries: 11 }],
      ['retries -1', { name: 'REFRESH_INFO', retries: -1 }],
      ['retriesDelayMs -1', { name: 'REFRESH_INFO', retriesDelayMs: -1 }],
      ['retryResultList as a string', { name: 'REFRESH_INFO', retryResultList: 'ERROR_PROCESSING' }],
      ['retryResultList with an operator', { name: 'REFRESH_INFO', retryResultList: [{ $ne: null }] }],
      ['delivery fax', { name: 'REFRESH_INFO', delivery: 'fax' }],
      ['delivery as an operator', { name: 'REFRESH_INFO', delivery: { $ne: 'auto' } }],
      ['push to a device with no operation URL', { name: 'REFRESH_INFO', delivery: 'push' }],
      ['parameters over 64 KiB', { name: 'REFRESH_INFO', parameters: { blob: 'x'.repeat(66 * 1024) } }],
      ['a JSON array body', [{ name: 'REFRESH_INFO' }]],
      ['a JSON string body', 'REFRESH_INFO'],
      ['a JSON null body', null],
    ])('answers 400 to %s', async (_what, body) => {
      await expectRefused(() => admin.post(path(gen), JSON.stringify(body)), 400, 'INVALID_ARGUMENT');
    });

    it('answers 413 to a body declared over the 4 MiB north limit, without reading it', async () => {
      const res = await expectRefused(
        () =>
          rawPost(
            `${tf.baseUrl}${path(gen)}`,
            tf.adminKey,
            '{"name": "REFRESH_INFO", "parameters": {"blob": "xx',
            {
              declaredBytes: 4 * 1024 * 1024 + 1024,
            },
          ),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      expect(res.headers.get('connection')).toBe('close');
    });

    describe('on an electricity meter', () => {
      it('answers 400 to an operation outside its catalogue, naming the ones it knows', async () => {
        for (const name of ['FACTORY_RESET', 'EQUIPMENT_DIAGNOSTIC', 'SELF_DESTRUCT']) {
          const res = await expectRefused(() => admin.post(path(meter), { name }), 400, 'INVALID_ARGUMENT');
          expect(res.body.error.message).toContain(name);
          expect(res.body.error.message).toContain('electricity-meter');
          for (const known of METER_OPERATIONS) expect(res.body.error.message).toContain(known);
        }
      });

      it.each<[string, Record<string, unknown>]>([
        ['REBOOT_EQUIPMENT type COLD', { name: 'REBOOT_EQUIPMENT', parameters: { type: 'COLD' } }],
        [
          'REBOOT_EQUIPMENT type COLD in the legacy list form',
          { name: 'REBOOT_EQUIPMENT', parameters: [{ name: 'type', value: { string: 'COLD' } }] },
        ],
        [
          'REBOOT_EQUIPMENT with an unknown parameter',
          { name: 'REBOOT_EQUIPMENT', parameters: { type: 'HARDWARE', force: true } },
        ],
        ['SET_POWER_LIMIT limitW -5', { name: 'SET_POWER_LIMIT', parameters: { limitW: -5 } }],
        ['SET_POWER_LIMIT limitW as a string', { name: 'SET_POWER_LIMIT', parameters: { limitW: '5000' } }],
        ['SET_POWER_LIMIT without limitW', { name: 'SET_POWER_LIMIT' }],
        ['UPDATE without deploymentElements', { name: 'UPDATE', parameters: {} }],
        ['UPDATE with no deployment element', { name: 'UPDATE', parameters: { deploymentElements: [] } }],
        [
          'UPDATE with a download URL that is not a URL',
          {
            name: 'UPDATE',
            parameters: { deploymentElements: [{ name: 'fw', version: '1', downloadUrl: 'not a url' }] },
          },
        ],
        ['REFRESH_INFO with parameters', { name: 'REFRESH_INFO', parameters: { now: true } }],
        [
          'SET_CLOCK_EQUIPMENT with a bad date',
          { name: 'SET_CLOCK_EQUIPMENT', parameters: { date: '01/02/2024', time: '10:00' } },
        ],
        [
          'parameters over 64 KiB',
          { name: 'DISCONNECT_SUPPLY', parameters: { reason: 'x'.repeat(66 * 1024) } },
        ],
      ])('answers 400 to bad parameters: %s', async (_what, body) => {
        const res = await expectRefused(() => admin.post(path(meter), body), 400, 'INVALID_ARGUMENT');
        expect(res.body.error.message).toMatch(/parameter/);
      });
    });
  });

  describe('GET /north/v1/devices/{id}/operations', () => {
    const path = (deviceId: string, query = '') => `/north/v1/devices/${deviceId}/operations${query}`;
    const cursorOf = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

    it.each([
      '?foo=1',
      '?limit=0',
      '?limit=501',
      '?limit=abc',
      '?limit=1.5',
      '?limit=-1',
      '?limit=1&limit=2',
      '?limit[$gt]=0',
      '?cursor=not-a-cursor',
      `?cursor=${cursorOf('1700000000000:../../x')}`,
      `?cursor=${'A'.repeat(401)}`,
      '?status=DONE',
      '?status=successful',
      '?status[$ne]=DONE',
      '?$where=1',
    ])('answers 400 to the query %s', async (query) => {
      await expectRefused(() => admin.get(path(gen, query)), 400, 'INVALID_ARGUMENT');
    });

    it('answers 404 for an unknown device and a device id of a bad shape', async () => {
      await expectRefused(() => admin.get(path('nobody-here')), 404, 'NOT_FOUND');
      await expectRefused(() => admin.get(path('..%2F..%2Fetc')), 404, 'NOT_FOUND');
      await expectRefused(() => admin.get(path('%24ne')), 404, 'NOT_FOUND');
    });

    it('answers 401 without a key and 403 to a device key', async () => {
      await expectRefused(() => anonymous.get(path(gen)), 401, 'UNAUTHENTICATED');
      await expectRefused(() => apiClient(tf.baseUrl, genKey).get(path(gen)), 403, 'PERMISSION_DENIED');
    });
  });

  describe('GET /north/v1/operations/{id}', () => {
    const path = (id: string, query = '') => `/north/v1/operations/${id}${query}`;

    it('answers 404 for an unknown id and for ids of a bad shape', async () => {
      await expectRefused(() => admin.get(path(UNKNOWN_OP)), 404, 'NOT_FOUND');
      for (const bad of ['..%2F..', '%24ne', '-dash-first', 'a'.repeat(65), `${waitingOp}%00`]) {
        await expectRefused(() => admin.get(path(bad)), 404, 'NOT_FOUND');
      }
    });

    it.each([
      '?waitMs=-1',
      '?waitMs=60001',
      '?waitMs=abc',
      '?waitMs=1.5',
      '?waitMs=1&waitMs=2',
      '?waitMs[$gt]=0',
      '?foo=1',
    ])('answers 400 to the query %s', async (query) => {
      await expectRefused(() => admin.get(path(waitingOp, query)), 400, 'INVALID_ARGUMENT');
    });

    it('answers 401 without a key and 403 to a device key, even the operation’s own device', async () => {
      await expectRefused(() => anonymous.get(path(waitingOp)), 401, 'UNAUTHENTICATED');
      await expectRefused(
        () => apiClient(tf.baseUrl, sleepyKey).get(path(waitingOp)),
        403,
        'PERMISSION_DENIED',
      );
    });
  });

  describe('POST /north/v1/operations/{id}/cancel', () => {
    const path = (id: string) => `/north/v1/operations/${id}/cancel`;

    it('answers 404 for an unknown operation and an id of a bad shape', async () => {
      await expectRefused(() => admin.post(path(UNKNOWN_OP)), 404, 'NOT_FOUND');
      await expectRefused(() => admin.post(path('..%2F..')), 404, 'NOT_FOUND');
      await expectRefused(() => admin.post(path('%24ne')), 404, 'NOT_FOUND');
    });

    it('answers 409 for an operation that has already ended', async () => {
      const res = await expectRefused(() => admin.post(path(endedOp)), 409, 'CONFLICT');
      expect(res.body.error.message).toContain('CANCELLED');
    });

    it('answers 401 without a key and 403 to a device key, even the operation’s own device', async () => {
      await expectRefused(() => anonymous.post(path(waitingOp)), 401, 'UNAUTHENTICATED');
      await expectRefused(
        () => apiClient(tf.baseUrl, sleepyKey).post(path(waitingOp)),
        403,
        'PERMISSION_DENIED',
      );
    });
  });

  describe('POST /south/v80/devices/{id}/operation/response', () => {
    const path = (deviceId: string) => `/south/v80/devices/${deviceId}/operation/response`;
    const envelope = (id: unknown, response: Record<string, unknown> = {}) => ({
      version: '8.0',
      operation: {
        response: {
          id,
          deviceId: sleepy,
          name: 'REBOOT_EQUIPMENT',
          timestamp: Date.now(),
          resultCode: 'SUCCESSFUL',
          resultDescription: 'done',
          ...response,
        },
      },
    });
    const step = (i: number) => ({ name: `STEP_${i}`, result: 'SUCCESSFUL', timestamp: 1 });
    const device = () => apiClient(tf.baseUrl, sleepyKey);

    it('answers 401 without a key and with an unknown key', async () => {
      await expectRefused(() => anonymous.post(path(sleepy), envelope(waitingOp)), 401, 'UNAUTHENTICATED');
      await expectRefused(
        () => apiClient(tf.baseUrl, FAKE_KEY).post(path(sleepy), envelope(waitingOp)),
        401,
        'UNAUTHENTICATED',
      );
      await expectRefused(
        () => anonymous.post(`${path(sleepy)}?X-ApiKey=${FAKE_KEY}`, envelope(waitingOp)),
        401,
        'UNAUTHENTICATED',
      );
    });

    it('answers 403 to another device’s key on this device’s URL', async () => {
      await expectRefused(
        () => apiClient(tf.baseUrl, otherKey).post(path(sleepy), envelope(waitingOp)),
        403,
        'PERMISSION_DENIED',
      );
      await expectRefused(
        () => anonymous.post(`${path(sleepy)}?X-ApiKey=${otherKey}`, envelope(waitingOp)),
        403,
        'PERMISSION_DENIED',
      );
    });

    it('answers 403 to a device that answers another device’s operation on its own URL', async () => {
      await expectRefused(
        () => apiClient(tf.baseUrl, otherKey).post(path(other), envelope(waitingOp, { deviceId: other })),
        403,
        'PERMISSION_DENIED',
      );
    });

    it('answers 400 to malformed JSON and an empty body, 415 to a body that is not JSON', async () => {
      await expectRefused(
        () => device().post(path(sleepy), `{"operation": {"response": {"id": "${waitingOp}"`),
        400,
        'BAD_REQUEST',
      );
      await expectRefused(
        () => device().request('POST', path(sleepy), undefined, { 'content-type': 'application/json' }),
        400,
        'BAD_REQUEST',
      );
      await expectRefused(
        () =>
          device().post(path(sleepy), JSON.stringify(envelope(waitingOp)), { 'content-type': 'text/plain' }),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      );
    });

    it.each<[string, () => unknown]>([
      ['no operation', () => ({ version: '8.0' })],
      ['no operation.response', () => ({ operation: { request: { id: waitingOp } } })],
      [
        'no operation.response.id',
        () => {
          const body = envelope(waitingOp);
          delete (body.operation.response as { id?: unknown }).id;
          return body;
        },
      ],
      ['an empty id', () => envelope('')],
      ['a numeric id', () => envelope(12345)],
      ['an operator as the id', () => envelope({ $ne: null })],
      ['an id of 129 characters', () => envelope('a'.repeat(129))],
      ['resultCode as a number', () => envelope(waitingOp, { resultCode: 0 })],
      ['an empty resultCode', () => envelope(waitingOp, { resultCode: '' })],
      ['steps not an array', () => envelope(waitingOp, { steps: { name: 'S', result: 'SUCCESSFUL' } })],
      ['257 steps', () => envelope(waitingOp, { steps: Array.from({ length: 257 }, (_, i) => step(i)) })],
      ['a step without a result', () => envelope(waitingOp, { steps: [{ name: 'S' }] })],
      ['a negative timestamp', () => envelope(waitingOp, { timestamp: -1 })],
      ['a version that is a number', () => ({ ...envelope(waitingOp), version: 8 })],
      ['a JSON array body', () => [envelope(waitingOp)]],
    ])('answers 400 to %s', async (_what, body) => {
      await expectRefused(() => device().post(path(sleepy), JSON.stringify(body())), 400, 'INVALID_ARGUMENT');
    });

    it('answers 404 for an unknown operation id, and for ids no operation can have', async () => {
      await expectRefused(() => device().post(path(sleepy), envelope(UNKNOWN_OP)), 404, 'NOT_FOUND');
      await expectRefused(() => device().post(path(sleepy), envelope('../../x')), 404, 'NOT_FOUND');
      await expectRefused(() => device().post(path(sleepy), envelope(`${waitingOp}/x`)), 404, 'NOT_FOUND');
    });

    it('answers 404 for an unknown device, even to an admin key', async () => {
      await expectRefused(() => admin.post(path('nobody-here'), envelope(UNKNOWN_OP)), 404, 'NOT_FOUND');
      await expectRefused(() => admin.post(path('%24ne'), envelope(waitingOp)), 404, 'NOT_FOUND');
    });

    it('answers 404 for an unknown device to an admin key, also naming another device’s operation', async () => {
      // The device does not exist: that it is not the operation's device is beside the point.
      await expectRefused(() => admin.post(path('nobody-here'), envelope(waitingOp)), 404, 'NOT_FOUND');
    });

    it('answers 413 to a body declared over the 1 MiB south limit, without reading it', async () => {
      const res = await expectRefused(
        () =>
          rawPost(
            `${tf.baseUrl}${path(sleepy)}`,
            sleepyKey,
            `{"operation": {"response": {"id": "${waitingOp}"`,
            {
              declaredBytes: 1024 * 1024 + 1024,
            },
          ),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      expect(res.headers.get('connection')).toBe('close');
    });
  });

  describe('GET|POST /south/v80/devices/{id}/operation/pending', () => {
    const path = (deviceId: string, query = '') => `/south/v80/devices/${deviceId}/operation/pending${query}`;
    const methods = ['GET', 'POST'] as const;

    it.each(methods)('%s answers 401 without a key and with an unknown key', async (method) => {
      await expectRefused(() => anonymous.request(method, path(sleepy)), 401, 'UNAUTHENTICATED');
      await expectRefused(
        () => apiClient(tf.baseUrl, FAKE_KEY).request(method, path(sleepy)),
        401,
        'UNAUTHENTICATED',
      );
      await expectRefused(
        () => anonymous.request(method, path(sleepy, `?X-ApiKey=${FAKE_KEY}`)),
        401,
        'UNAUTHENTICATED',
      );
    });

    it.each(methods)('%s answers 403 to another device’s key', async (method) => {
      await expectRefused(
        () => apiClient(tf.baseUrl, otherKey).request(method, path(sleepy)),
        403,
        'PERMISSION_DENIED',
      );
      await expectRefused(
        () => anonymous.request(method, path(sleepy, `?X-ApiKey=${otherKey}`)),
        403,
        'PERMISSION_DENIED',
      );
    });

    it.each(
      methods.flatMap((method) =>
        [
          '?limit=0',
          '?limit=101',
          '?limit=abc',
          '?limit=-1',
          '?limit=1.5',
          '?limit=1&limit=2',
          '?limit[$gt]=0',
          '?foo=1',
          '?$where=1',
        ].map((query) => [method, query] as const),
      ),
    )('%s answers 400 to the query %s', async (method, query) => {
      await expectRefused(
        () => apiClient(tf.baseUrl, sleepyKey).request(method, path(sleepy, query)),
        400,
        'INVALID_ARGUMENT',
      );
    });

    it.each(methods)('%s answers 400 to a bad query when the key is in the query too', async (method) => {
      await expectRefused(
        () => anonymous.request(method, path(sleepy, `?X-ApiKey=${sleepyKey}&limit=0`)),
        400,
        'INVALID_ARGUMENT',
      );
    });

    it.each(methods)('%s answers 404 for an unknown device, even to an admin key', async (method) => {
      await expectRefused(() => admin.request(method, path('nobody-here')), 404, 'NOT_FOUND');
      await expectRefused(() => admin.request(method, path('..%2F..%2Fetc')), 404, 'NOT_FOUND');
      await expectRefused(() => admin.request(method, path('%24ne')), 404, 'NOT_FOUND');
    });
  });

  describe('afterwards', () => {
    it('lets a good poll take the waiting operation exactly once', async () => {
      const device = apiClient(tf.baseUrl, sleepyKey);
      const first = await device.get(`/south/v80/devices/${sleepy}/operation/pending`);
      expect(first.status).toBe(200);
      expect(first.body).toHaveLength(1);
      expect(first.body[0].operation.request).toMatchObject({
        id: waitingOp,
        deviceId: sleepy,
        name: 'REBOOT_EQUIPMENT',
        parameters: { type: 'SOFTWARE' },
      });
      const again = await device.post(`/south/v80/devices/${sleepy}/operation/pending`);
      expect(again.status).toBe(200);
      expect(again.body).toEqual([]);
      expect((await admin.get(`/north/v1/operations/${waitingOp}`)).body.status).toBe('DELIVERED');
      // The other devices hold nothing either.
      const others = await apiClient(tf.baseUrl, otherKey).get(
        `/south/v80/devices/${other}/operation/pending`,
      );
      expect(others.body).toEqual([]);
    });

    it('started no operation workflow for any bad request', async () => {
      const expected: Record<string, string[]> = {
        [gen]: [endedOp],
        [meter]: [],
        [sleepy]: [waitingOp],
        [other]: [],
        [gone]: [],
      };
      const listed = async (deviceId: string): Promise<string[]> => {
        const ids: string[] = [];
        for await (const wf of temporal.client.workflow.list({
          query: `WorkflowId STARTS_WITH "op/default/${deviceId}/"`,
        })) {
          ids.push(wf.workflowId.split('/').pop()!);
        }
        return ids.sort();
      };
      // Visibility lags a little: wait until the two known workflows show, then compare the whole lists.
      const actual = await eventually(async () => {
        const lists = Object.fromEntries(
          await Promise.all(Object.keys(expected).map(async (d) => [d, await listed(d)] as const)),
        );
        return lists[gen]!.length > 0 && lists[sleepy]!.length > 0 ? lists : undefined;
      });
      expect(actual).toEqual(expected);
      const db = mongo.db(tf.env.MONGODB_DB);
      const records = await db.collection('operations').find({}).toArray();
      expect(records.map((r) => r.id).sort()).toEqual([endedOp, waitingOp].sort());
    });
  });
});
