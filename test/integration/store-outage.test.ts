// When the inventory is unreachable, devices get 503 with Retry-After (nothing acknowledged), and readiness says so.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type MongoServer, getFreePort, startMongoServer } from '../../worker/local-stack';
import type { MongoTool } from '../../worker/tools';
import { apiClient, collectBody, itEnv, startTwinflow } from './harness';

describe('an inventory outage', () => {
  let dir: string;
  let mongo: MongoServer;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-outage-'));
    const kind = itEnv('TWINFLOW_IT_MONGO_KIND') as MongoTool['kind'];
    mongo = await startMongoServer({
      tool: { kind, path: itEnv('TWINFLOW_IT_MONGO_BIN') },
      port: await getFreePort(),
      dataDir: dir,
    });
  });
  afterAll(async () => {
    await mongo?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 503 with Retry-After to data it could not store, and reports not ready', async () => {
    const tf = await startTwinflow({ env: { MONGODB_URI: mongo.uri } });
    try {
      const admin = apiClient(tf.baseUrl, tf.adminKey);
      const key = (await admin.post('/north/v1/devices', { id: 'lonely' })).body.apiKey;
      const device = apiClient(tf.baseUrl, key);
      const body = collectBody([{ id: 'x', datapoints: [{ value: 1 }] }]);
      expect((await device.post('/south/v80/devices/lonely/collect/iot', body)).status).toBe(201);

      await mongo.stop();
      const res = await device.post('/south/v80/devices/lonely/collect/iot', body);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(res.body.error.code).toBe('UNAVAILABLE');
      const ready = await apiClient(tf.baseUrl).get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.mongodb.ok).toBe(false);
      expect(ready.body.checks.temporal.ok).toBe(true);
    } finally {
      await tf.stop();
    }
  });
});
