// Bad input on every route: the right 4xx, one error shape, and nothing stored.
import http from 'node:http';
import type { MongoClient } from 'mongodb';
import {
  type ApiClient,
  type TwinflowProcess,
  apiClient,
  collectBody,
  mongoClient,
  startTwinflow,
  writtenBack,
} from './harness';

describe('bad input', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let mongo: MongoClient;
  let deviceKey: string;
  let otherKey: string;

  const counts = async () => {
    const db = mongo.db(tf.env.MONGODB_DB);
    const [devices, datapoints, keys] = await Promise.all([
      db.collection('devices').countDocuments(),
      db.collection('datapoints').countDocuments(),
      db.collection('api_keys').countDocuments(),
    ]);
    const dev = await db.collection('devices').findOne({ _id: 'default/dev-1' as never });
    const latestPages = await db.collection('latest').find({}).sort({ _id: 1 }).toArray();
    return {
      devices,
      datapoints,
      keys,
      latest: JSON.stringify(latestPages),
      attributes: JSON.stringify(dev?.attributes),
    };
  };

  /** Runs the request and checks it changed nothing in the inventory. */
  const expectNoChange = async (
    fn: () => Promise<{ status: number; body: any }>,
    status: number,
    code?: string,
  ) => {
    // Data an earlier test stored is written back on the write-back's own time: let it land first.
    await writtenBack(mongo, tf.env.MONGODB_DB as string);
    const before = await counts();
    const res = await fn();
    expect(res.status).toBe(status);
    expect(res.body?.error).toEqual(
      expect.objectContaining({
        code: code ?? expect.any(String),
        message: expect.any(String),
        requestId: expect.any(String),
      }),
    );
    expect(await counts()).toEqual(before);
    return res;
  };

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    mongo = await mongoClient();
    deviceKey = (await admin.post('/north/v1/devices', { id: 'dev-1', attributes: { a: 1 } })).body.apiKey;
    otherKey = (await admin.post('/north/v1/devices', { id: 'dev-2' })).body.apiKey;
  });
  afterAll(async () => {
    await mongo?.close();
    await tf?.stop();
  });

  describe('credentials', () => {
    it('answers 401 without a key and with an unknown key', async () => {
      await expectNoChange(() => apiClient(tf.baseUrl).get('/north/v1/devices'), 401, 'UNAUTHENTICATED');
      await expectNoChange(
        () => apiClient(tf.baseUrl, 'tfk_00000000_not-a-real-key-at-all').get('/north/v1/devices'),
        401,
        'UNAUTHENTICATED',
      );
      await expectNoChange(
        () =>
          apiClient(tf.baseUrl).post(
            '/south/v80/devices/dev-1/collect/iot',
            collectBody([{ id: 't', datapoints: [{ value: 1 }] }]),
          ),
        401,
        'UNAUTHENTICATED',
      );
    });

    it('answers 403 when a device key is used for another device', async () => {
      await expectNoChange(
        () =>
          apiClient(tf.baseUrl, otherKey).post(
            '/south/v80/devices/dev-1/collect/iot',
            collectBody([{ id: 't', datapoints: [{ value: 1 }] }]),
          ),
        403,
        'PERMISSION_DENIED',
      );
      // A device key cannot name another origin device in the body either.
      await expectNoChange(
        () =>
          apiClient(tf.baseUrl, otherKey).post('/south/v80/devices/dev-2/collect/iot', {
            device: 'dev-1',
            datastreams: [{ id: 't', datapoints: [{ value: 1 }] }],
          }),
        403,
        'PERMISSION_DENIED',
      );
    });

    it('answers 403 when a device key is used on the north API', async () => {
      await expectNoChange(
        () => apiClient(tf.baseUrl, deviceKey).get('/north/v1/devices'),
        403,
        'PERMISSION_DENIED',
      );
      await expectNoChange(
        () => apiClient(tf.baseUrl, deviceKey).post('/north/v1/devices', { id: 'sneaky' }),
        403,
        'PERMISSION_DENIED',
      );
    });
  });

  describe('collect bodies', () => {
    const device = () => apiClient(tf.baseUrl, deviceKey);
    const post = (body: unknown, headers?: Record<string, string>) =>
      device().post('/south/v80/devices/dev-1/collect/iot', body, headers);

    it('answers 400 to malformed JSON and an empty body', async () => {
      await expectNoChange(() => post('{"datastreams": [', {}), 400, 'BAD_REQUEST');
      await expectNoChange(
        () =>
          device().request('POST', '/south/v80/devices/dev-1/collect/iot', undefined, {
            'content-type': 'application/json',
          }),
        400,
        'BAD_REQUEST',
      );
    });

    it('answers 415 to a body that is not JSON', async () => {
      await expectNoChange(
        () => post('a,b,c', { 'content-type': 'text/csv' }),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      );
    });

    it.each([
      ['datastreams missing', { version: '1.0.0' }],
      ['datastreams not an array', { datastreams: {} }],
      ['empty datastreams', { datastreams: [] }],
      ['datastream without id', { datastreams: [{ datapoints: [{ value: 1 }] }] }],
      ['numeric datastream id', { datastreams: [{ id: 7, datapoints: [{ value: 1 }] }] }],
      ['datapoint without value', { datastreams: [{ id: 't', datapoints: [{ at: 1 }] }] }],
      ['at as a string', { datastreams: [{ id: 't', datapoints: [{ value: 1, at: '2024-01-01' }] }] }],
      [
        'at in microseconds',
        { datastreams: [{ id: 't', datapoints: [{ value: 1, at: 1_700_000_000_000_000 }] }] },
      ],
      ['negative at', { datastreams: [{ id: 't', datapoints: [{ value: 1, at: -5 }] }] }],
      [
        'one good, one bad datastream',
        {
          datastreams: [
            { id: 'ok', datapoints: [{ value: 1 }] },
            { id: 'bad', datapoints: 'x' },
          ],
        },
      ],
      ['a JSON array body', [{ id: 't' }]],
      ['a JSON string body', 'just a string'],
    ])('answers 400 to wrong types: %s', async (_name, body) => {
      await expectNoChange(
        () => post(typeof body === 'string' ? JSON.stringify(body) : body),
        400,
        'INVALID_ARGUMENT',
      );
    });

    it('answers 413 to an oversized body', async () => {
      const big = collectBody([{ id: 'blob', datapoints: [{ value: 'x'.repeat(1_100_000) }] }]);
      await expectNoChange(() => post(big), 413, 'PAYLOAD_TOO_LARGE');
    });

    /** POSTs the text in chunks of 64 KiB without a declared length (Transfer-Encoding: chunked). */
    const postChunked = (text: string): Promise<{ status: number; body: any }> =>
      new Promise((resolve, reject) => {
        const req = http.request(`${tf.baseUrl}/south/v80/devices/dev-1/collect/iot`, {
          method: 'POST',
          headers: { 'X-ApiKey': deviceKey, 'content-type': 'application/json' },
        });
        req.on('response', (res) => {
          let answer = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (answer += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(answer || 'null') }));
        });
        // The server may answer and close before the whole body went out.
        req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? undefined : reject(err)));
        for (let i = 0; i < text.length; i += 65_536) req.write(text.slice(i, i + 65_536));
        req.end();
      });

    it('counts a chunked body as it streams in: 413 over the limit, stored under it', async () => {
      const big = JSON.stringify(
        collectBody([{ id: 'blob', datapoints: [{ value: 'x'.repeat(1_100_000) }] }]),
      );
      await expectNoChange(() => postChunked(big), 413, 'PAYLOAD_TOO_LARGE');
      const small = JSON.stringify(
        collectBody([{ id: 'chunked', datapoints: [{ value: 'y'.repeat(200_000) }] }]),
      );
      const res = await postChunked(small);
      expect(res.status).toBe(201);
    });

    it('reads a body that begins with a byte-order mark, of declared length or chunked, as UTF-8', async () => {
      const bom = '\uFEFF';
      const declared = JSON.stringify(
        collectBody([{ id: 'bom.declared', datapoints: [{ value: 'Größe €' }] }]),
      );
      expect((await post(bom + declared)).status).toBe(201);
      const chunked = JSON.stringify(
        collectBody([{ id: 'bom.chunked', datapoints: [{ value: 'naïve ✓' }] }]),
      );
      expect((await postChunked(bom + chunked)).status).toBe(201);
      const view = await admin.get('/north/v1/devices/dev-1');
      const value = (id: string) =>
        view.body.datastreams.find((d: { id: string }) => d.id === id)?.value as unknown;
      expect(value('bom.declared')).toBe('Größe €');
      expect(value('bom.chunked')).toBe('naïve ✓');
    });

    it('answers 404 for an unknown device, even to an admin key', async () => {
      await expectNoChange(
        () =>
          admin.post(
            '/south/v80/devices/nobody/collect/iot',
            collectBody([{ id: 't', datapoints: [{ value: 1 }] }]),
          ),
        404,
        'NOT_FOUND',
      );
    });

    it('stores values whose keys MongoDB would refuse, and gives them back unchanged', async () => {
      const odd = { 'a.b': 1, $where: 'x', nested: { 'c.d': [1, { $gt: 2 }] } };
      const res = await post(collectBody([{ id: 'odd.value', datapoints: [{ value: odd }] }]));
      expect(res.status).toBe(201);
      const view = await admin.get('/north/v1/devices/dev-1');
      expect(view.body.datastreams.find((d: { id: string }) => d.id === 'odd.value').value).toEqual(odd);
    });
  });

  describe('north requests', () => {
    it('rejects query parameters shaped like MongoDB operators', async () => {
      for (const q of ['type[$ne]=x', 'status[$gt]=', '$where=1', 'tag[$regex]=.*']) {
        await expectNoChange(() => admin.get(`/north/v1/devices?${q}`), 400, 'INVALID_ARGUMENT');
      }
      await expectNoChange(() => admin.get('/north/v1/devices?limit=0'), 400, 'INVALID_ARGUMENT');
      await expectNoChange(() => admin.get('/north/v1/devices?limit=abc'), 400, 'INVALID_ARGUMENT');
      await expectNoChange(() => admin.get('/north/v1/devices?cursor=%%%'), 400, 'INVALID_ARGUMENT');
      await expectNoChange(() => admin.get('/north/v1/devices?type=a&type=b'), 400, 'INVALID_ARGUMENT');
    });

    it('treats operator-looking values as plain strings', async () => {
      const res = await admin.get(`/north/v1/devices?q=${encodeURIComponent('.*')}`);
      expect(res.status).toBe(200);
      expect(res.body.items).toEqual([]);
    });

    it('rejects bad provisioning bodies', async () => {
      await expectNoChange(
        () => admin.post('/north/v1/devices', { id: 'has/slash' }),
        400,
        'INVALID_ARGUMENT',
      );
      await expectNoChange(
        () => admin.post('/north/v1/devices', { id: { $gt: '' } }),
        400,
        'INVALID_ARGUMENT',
      );
      await expectNoChange(
        () => admin.post('/north/v1/devices', { id: 'x1', type: 'nope' }),
        400,
        'INVALID_ARGUMENT',
      );
      await expectNoChange(
        () => admin.post('/north/v1/devices', { id: 'x2', unknownField: 1 }),
        400,
        'INVALID_ARGUMENT',
      );
      await expectNoChange(
        () => admin.post('/north/v1/devices', { id: 'x3', attributes: { 'a.b': 1 } }),
        400,
        'INVALID_ARGUMENT',
      );
      await expectNoChange(
        () =>
          admin.post('/north/v1/devices', {
            id: 'x4',
            transport: { http: { operationUrl: 'file:///etc/passwd' } },
          }),
        400,
        'INVALID_ARGUMENT',
      );
      await expectNoChange(
        () => admin.post('/north/v1/devices/bulk', { devices: [] }),
        400,
        'INVALID_ARGUMENT',
      );
      await expectNoChange(
        () =>
          admin.post('/north/v1/devices/bulk', {
            devices: Array.from({ length: 1001 }, (_, i) => ({ id: `b${i}` })),
          }),
        400,
        'INVALID_ARGUMENT',
      );
    });

    it('rejects bad changes and unknown devices', async () => {
      await expectNoChange(() => admin.patch('/north/v1/devices/dev-1', {}), 400, 'INVALID_ARGUMENT');
      await expectNoChange(
        () => admin.patch('/north/v1/devices/dev-1', { attributes: { a: { nested: true } } }),
        400,
        'INVALID_ARGUMENT',
      );
      await expectNoChange(
        () => admin.patch('/north/v1/devices/dev-1', { lifecycle: 'DECOMMISSIONED' }),
        400,
        'INVALID_ARGUMENT',
      );
      await expectNoChange(() => admin.patch('/north/v1/devices/ghost', { name: 'x' }), 404, 'NOT_FOUND');
      await expectNoChange(() => admin.delete('/north/v1/devices/ghost'), 404, 'NOT_FOUND');
      await expectNoChange(() => admin.get('/north/v1/devices/..%2F..%2Fetc'), 404, 'NOT_FOUND');
    });

    it('answers 404 with the error shape for unknown routes', async () => {
      await expectNoChange(() => admin.get('/north/v1/nothing-here'), 404, 'NOT_FOUND');
    });
  });
});
