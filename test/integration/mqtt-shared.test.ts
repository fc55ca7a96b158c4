// TwinFlow behind a real Mosquitto (Debian's binary, started here on a free port) with a shared subscription
// over several connections: every message published by many devices is stored once, none lost or doubled.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MongoClient } from 'mongodb';
import mqtt from 'mqtt';

import { getFreePort } from '../../worker/local-stack';
import {
  apiClient,
  eventually,
  mongoClient,
  startTwinflow,
  storedPoints,
  type TwinflowProcess,
  uniqueName,
} from './harness';

jest.setTimeout(120_000);

const MOSQUITTO = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin']
  .map((dir) => path.join(dir, 'mosquitto'))
  .find((p) => existsSync(p));

async function startMosquitto(port: number): Promise<ChildProcess> {
  if (!MOSQUITTO) throw new Error('mosquitto is not installed: apt-get install mosquitto (.ci/run does)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_type error\n`,
  );
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  // Ready when a client can connect.
  await eventually(async () => {
    const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    await probe.endAsync();
    return true;
  }, 10_000);
  return child;
}

describe('an external Mosquitto with a shared subscription over several connections', () => {
  const DEVICES = 20;
  const MESSAGES = 10;
  const db = uniqueName('mqshared');
  let broker: ChildProcess;
  let url: string;
  let tf: TwinflowProcess;
  let mongo: MongoClient;

  beforeAll(async () => {
    const port = await getFreePort();
    url = `mqtt://127.0.0.1:${port}`;
    broker = await startMosquitto(port);
    tf = await startTwinflow({
      db,
      env: {
        MQTT_URL: url,
        TWINFLOW_MQTT_CLIENT_ID: `twinflow-${db}`,
        TWINFLOW_MQTT_SHARED: 'on',
        TWINFLOW_MQTT_SHARE_GROUP: 'tf',
        TWINFLOW_MQTT_CONNECTIONS: '4',
      },
    });
    mongo = await mongoClient();
    const admin = apiClient(tf.baseUrl, tf.adminKey);
    const devices = Array.from({ length: DEVICES }, (_, i) => ({ id: `sh-${i}`, transport: { mqtt: true } }));
    const created = await admin.post('/north/v1/devices/bulk', { devices });
    expect(created.status).toBeLessThan(300);
  });

  afterAll(async () => {
    await mongo?.close();
    await tf?.stop();
    broker?.kill('SIGTERM');
  });

  it('keeps every adapter connection open, as /metrics counts them', async () => {
    const metrics = await apiClient(tf.baseUrl, tf.adminKey).get('/metrics');
    expect(metrics.body).toMatch(/^twinflow_mqtt_connected_clients 4$/m);
  });

  it('stores each message of many devices exactly once', async () => {
    const clients = await Promise.all(
      Array.from({ length: DEVICES }, (_, i) => mqtt.connectAsync(url, { clientId: `sh-${i}` })),
    );
    await Promise.all(
      clients.map(async (client, d) => {
        for (let m = 0; m < MESSAGES; m++) {
          const body = {
            version: '1.0.0',
            datastreams: [{ id: 'n', datapoints: [{ value: m, at: 1_700_000_000_000 + m }] }],
          };
          await client.publishAsync(`odm/iot/sh-${d}`, JSON.stringify(body), { qos: 1 });
        }
      }),
    );
    await Promise.all(clients.map((c) => c.endAsync()));
    const total = DEVICES * MESSAGES;
    const count = async () => (await storedPoints(mongo, db, {})).length;
    expect(await eventually(async () => ((await count()) >= total ? count() : undefined), 60_000)).toBe(
      total,
    );
    for (let d = 0; d < DEVICES; d++) {
      const ats = (await storedPoints(mongo, db, { deviceId: `sh-${d}` }))
        .map((p) => p.at)
        .sort((a, b) => a - b);
      expect(ats).toEqual(Array.from({ length: MESSAGES }, (_, m) => 1_700_000_000_000 + m));
    }
  });
});
