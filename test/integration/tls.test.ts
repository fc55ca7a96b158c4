// TLS and device certificates over real connections: HTTPS and MQTT over TLS with Node clients and
// mosquitto_pub, certificates from a registered CA, pinned and issued from a CSR; refusals of an unknown CA,
// an expired, a revoked and another device's certificate and of another organization's CA; a revocation and a
// CA's deletion seen by a second API process; plain listeners beside TLS; and one clear error for a bad certificate file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MongoClient } from 'mongodb';
import type { MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import {
  createAuthority,
  createClientCertificate,
  createCsr,
  fingerprintOf,
  type KeyPair,
} from '../../access/pki';
import { getFreePort } from '../../worker/local-stack';
import {
  type ApiClient,
  apiClient,
  eventually,
  mongoClient,
  startTwinflow,
  storedPoints,
  type TwinflowProcess,
  uniqueName,
} from './harness';
import { type ClientTls, connectMqtts, httpsJson, mosquittoPub } from './support/tls-clients';

jest.setTimeout(180_000);

const collect = (value: number) => ({
  version: '1.0.0',
  datastreams: [{ id: 'temperature', datapoints: [{ value, at: Date.now() }] }],
});
const derOf = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
const fp = (pair: KeyPair) => fingerprintOf(derOf(pair.certPem));

async function tlsPorts() {
  return { https: await getFreePort(), mqtts: await getFreePort() };
}

describe('TLS listeners and device certificates', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tf-tls-'));
  const clients: MqttClient[] = [];
  let ports: { https: number; mqtts: number };
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let mongo: MongoClient;
  let caPem: string;
  let orgCa: KeyPair;
  let devA: KeyPair;
  const devAId = uniqueName('dev-a');
  const devBId = uniqueName('dev-b');
  const tlsOf = (pair?: KeyPair): ClientTls => ({
    ca: caPem,
    ...(pair ? { cert: pair.certPem, key: pair.keyPem } : {}),
  });
  const collectHttps = (deviceId: string, pair: KeyPair | undefined, headers: Record<string, string> = {}) =>
    httpsJson(
      `https://127.0.0.1:${ports.https}/south/v80/devices/${deviceId}/collect/iot`,
      tlsOf(pair),
      'POST',
      collect(1),
      headers,
    );
  const stored = (deviceId: string, org?: string) =>
    storedPoints(mongo, tf.env.MONGODB_DB as string, { deviceId, ...(org ? { org } : {}) }).then(
      (p) => p.length,
    );
  const mqttsUrl = () => `mqtts://127.0.0.1:${ports.mqtts}`;
  const connect = async (pair: KeyPair, login: { username?: string; password?: string } = {}) => {
    const client = await connectMqtts(mqttsUrl(), tlsOf(pair), { clientId: uniqueName('c'), ...login });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    ports = await tlsPorts();
    tf = await startTwinflow({
      env: {
        TWINFLOW_TLS: 'on',
        TWINFLOW_DATA_DIR: dataDir,
        TWINFLOW_HTTPS_PORT: String(ports.https),
        TWINFLOW_MQTTS_PORT: String(ports.mqtts),
      },
    });
    admin = apiClient(tf.baseUrl, tf.adminKey);
    mongo = await mongoClient();
    caPem = readFileSync(path.join(dataDir, 'tls', 'ca.pem'), 'utf8');
    orgCa = await createAuthority('Fleet CA', 30);
    const registered = await admin.post('/north/v1/certificate-authorities', {
      name: 'fleet',
      certificate: orgCa.certPem,
    });
    expect(registered.status).toBe(201);
    for (const id of [devAId, devBId])
      expect((await admin.post('/north/v1/devices', { id, transport: { mqtt: true } })).status).toBe(201);
    devA = await createClientCertificate(orgCa, devAId);
  });

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await mongo?.close();
    await tf?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('made a local CA on first start and says where it is and its fingerprint', () => {
    const fingerprint = fingerprintOf(derOf(caPem))
      .toUpperCase()
      .replace(/(..)(?!$)/g, '$1:');
    expect(tf.output()).toContain(
      `TLS CA:          ${path.join(dataDir, 'tls', 'ca.pem')} (SHA-256 ${fingerprint})`,
    );
    expect(tf.output()).toContain(`https://127.0.0.1:${ports.https}`);
    expect(tf.output()).toContain(`mqtts://127.0.0.1:${ports.mqtts}`);
  });

  it('stores what a device sends over HTTPS with its certificate', async () => {
    const res = await collectHttps(devAId, devA);
    expect(res.status).toBeLessThan(300);
    await eventually(async () => ((await stored(devAId)) >= 1 ? true : undefined));
  });

  it("refuses device A's certificate on device B's routes, and unknown, expired and foreign certificates", async () => {
    const foreignCa = await createAuthority('Unregistered CA', 30);
    const unknown = await createClientCertificate(foreignCa, devAId);
    const expired = await createClientCertificate(orgCa, devAId, {
      now: Date.now() - 10 * 86_400_000,
      days: 1,
    });
    const selfSigned = await createClientCertificate(await createAuthority(devAId, 30), devAId);
    const before = await stored(devBId);
    expect((await collectHttps(devBId, devA)).status).toBe(403);
    expect((await collectHttps(devAId, unknown)).status).toBe(401);
    expect((await collectHttps(devAId, expired)).status).toBe(401);
    expect((await collectHttps(devAId, selfSigned)).status).toBe(401);
    expect((await collectHttps(devAId, undefined)).status).toBe(401);
    await expect(connect(unknown)).rejects.toThrow(/Bad username or password|Not authorized/);
    await expect(connect(expired)).rejects.toThrow(/Bad username or password|Not authorized/);
    // With a username, it must be the device the certificate names.
    await expect(connect(devA, { username: devBId })).rejects.toThrow(/Bad username or password/);
    expect(await stored(devBId)).toBe(before);
  });

  it('stores what a device publishes over MQTT with TLS, and keeps it to its own topics', async () => {
    const client = await connect(devA);
    const before = await stored(devAId);
    await client.publishAsync(`odm/iot/${devAId}`, JSON.stringify(collect(2)), { qos: 1 });
    expect(await stored(devAId)).toBe(before + 1);
    // Refused in the SUBACK (0x80), which the client reports as an error.
    await expect(client.subscribeAsync(`odm/request/${devBId}`, { qos: 1 })).rejects.toThrow(
      /Subscribe error/,
    );
    // Publishing on another device's topic closes the connection; nothing is stored for B.
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(`odm/iot/${devBId}`, JSON.stringify(collect(3)), { qos: 1 });
    await closed;
    expect(await stored(devBId)).toBe(0);
  });

  it('stores what mosquitto_pub sends with --cafile --cert --key', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tf-pub-'));
    const files = {
      caFile: path.join(dir, 'ca.pem'),
      certFile: path.join(dir, 'd.pem'),
      keyFile: path.join(dir, 'd.key'),
    };
    writeFileSync(files.caFile, caPem);
    writeFileSync(files.certFile, devA.certPem);
    writeFileSync(files.keyFile, devA.keyPem);
    const before = await stored(devAId);
    const pub = await mosquittoPub({
      port: ports.mqtts,
      ...files,
      topic: `odm/iot/${devAId}`,
      message: JSON.stringify(collect(4)),
    });
    expect(pub).toEqual({ code: 0, output: '' });
    expect(await stored(devAId)).toBe(before + 1);
    rmSync(dir, { recursive: true, force: true });
  });

  it("never authenticates a device here with another organization's CA", async () => {
    const orgB = uniqueName('tls-org').replace(/_/g, '-');
    const email = `admin@${orgB}.example`;
    const created = await admin.post('/north/v1/organizations', {
      id: orgB,
      name: 'B',
      admin: { email, password: 'a long enough password' },
    });
    expect(created.status).toBe(201);
    const login = await apiClient(tf.baseUrl).post('/north/v1/auth/login', {
      email,
      password: 'a long enough password',
    });
    const asB = { authorization: `Bearer ${login.body.accessToken}` };
    const caB = await createAuthority('Org B CA', 30);
    const b = apiClient(tf.baseUrl);
    expect(
      (await b.post('/north/v1/certificate-authorities', { name: 'b', certificate: caB.certPem }, asB))
        .status,
    ).toBe(201);
    // Org B cannot register org A's CA: one CA, one organization.
    expect(
      (await b.post('/north/v1/certificate-authorities', { name: 'a', certificate: orgCa.certPem }, asB))
        .status,
    ).toBe(409);
    const fromB = await createClientCertificate(caB, devAId);
    const before = await stored(devAId);
    // Org B's CA names org B's device dev-a, which does not exist there; org A's is never reached.
    expect((await collectHttps(devAId, fromB)).status).toBe(404);
    await expect(connect(fromB)).rejects.toThrow(/Bad username or password/);
    expect(await stored(devAId)).toBe(before);
  });

  it('issues a certificate from a CSR, pins another, and rotates', async () => {
    expect(
      (await admin.post('/north/v1/certificate-authorities', { name: 'managed', managed: true })).status,
    ).toBe(201);
    const csr = await createCsr('whatever the device asked');
    const issued = await admin.post(`/north/v1/devices/${devBId}/certificates`, {
      csr: csr.csrPem,
      days: 30,
    });
    expect(issued.status).toBe(201);
    expect(issued.body.subject).toBe(`CN=${devBId}`);
    const issuedPair = { certPem: issued.body.certificate as string, keyPem: csr.keyPem };
    expect((await collectHttps(devBId, issuedPair)).status).toBeLessThan(300);

    const pinned = await createClientCertificate(await createAuthority('self', 30), 'any name at all');
    expect(
      (await admin.post(`/north/v1/devices/${devBId}/certificates`, { certificate: pinned.certPem })).status,
    ).toBe(201);
    expect((await collectHttps(devBId, pinned)).status).toBeLessThan(300);
    expect((await collectHttps(devAId, pinned)).status).toBe(403);

    const next = await createCsr(devBId);
    const rotated = await admin.post(`/north/v1/devices/${devBId}/certificates/${fp(issuedPair)}/rotate`, {
      csr: next.csrPem,
    });
    expect(rotated.status).toBe(201);
    expect((await collectHttps(devBId, issuedPair)).status).toBe(401);
    expect(
      (await collectHttps(devBId, { certPem: rotated.body.certificate, keyPem: next.keyPem })).status,
    ).toBeLessThan(300);
    const list = await admin.get(`/north/v1/devices/${devBId}/certificates`);
    expect(
      list.body.certificates
        .map((c: { source: string; revokedAt?: string }) => [c.source, c.revokedAt !== undefined])
        .sort(),
    ).toEqual([
      ['issued', false],
      ['issued', true],
      ['pinned', false],
    ]);
    const auditLog = await admin.get('/north/v1/audit');
    const actions = (auditLog.body.entries as { action: string }[]).map((e) => e.action);
    expect(actions).toEqual(
      expect.arrayContaining([
        'authority.create',
        'certificate.issue',
        'certificate.pin',
        'certificate.rotate',
      ]),
    );
  });

  it('accepts only certificates once the device is set so, and API keys beside certificates before', async () => {
    const keyed = uniqueName('dev-k');
    const created = await admin.post('/north/v1/devices', { id: keyed, transport: { mqtt: true } });
    const key = created.body.apiKey as string;
    const cert = await createClientCertificate(orgCa, keyed);
    expect((await collectHttps(keyed, undefined, { 'X-ApiKey': key })).status).toBeLessThan(300);
    expect((await collectHttps(keyed, cert)).status).toBeLessThan(300);
    const byKey = await mqtt.connectAsync(tf.mqttUrl, {
      username: keyed,
      password: key,
      clientId: uniqueName('k'),
      reconnectPeriod: 0,
    });
    clients.push(byKey);
    const closed = new Promise<void>((resolve) => byKey.once('close', () => resolve()));
    expect(
      (await admin.request('PUT', `/north/v1/devices/${keyed}/credential-policy`, { certificatesOnly: true }))
        .status,
    ).toBe(200);
    await closed;
    expect((await collectHttps(keyed, undefined, { 'X-ApiKey': key })).status).toBe(401);
    expect(
      (await apiClient(tf.baseUrl, key).post(`/south/v80/devices/${keyed}/collect/iot`, collect(5))).status,
    ).toBe(401);
    expect((await collectHttps(keyed, cert)).status).toBeLessThan(300);
    // Decommissioning revokes the certificates TwinFlow knows and closes their connections.
    const pinned = await createClientCertificate(await createAuthority('own', 30), keyed);
    expect(
      (await admin.post(`/north/v1/devices/${keyed}/certificates`, { certificate: pinned.certPem })).status,
    ).toBe(201);
    const byCert = await connect(pinned);
    const gone = new Promise<void>((resolve) => byCert.once('close', () => resolve()));
    expect((await admin.delete(`/north/v1/devices/${keyed}`)).status).toBe(200);
    await gone;
    expect((await collectHttps(keyed, pinned)).status).toBe(401);
  });

  it('keeps plain HTTP and MQTT working beside TLS', async () => {
    const id = uniqueName('dev-plain');
    const key = (await admin.post('/north/v1/devices', { id, transport: { mqtt: true } })).body
      .apiKey as string;
    expect(
      (await apiClient(tf.baseUrl, key).post(`/south/v80/devices/${id}/collect/iot`, collect(6))).status,
    ).toBeLessThan(300);
    const client = await mqtt.connectAsync(tf.mqttUrl, {
      username: id,
      password: key,
      clientId: uniqueName('p'),
      reconnectPeriod: 0,
    });
    clients.push(client);
    await client.publishAsync(`odm/iot/${id}`, JSON.stringify(collect(7)), { qos: 1 });
    expect(await stored(id)).toBe(2);
    // A key over MQTT with TLS works too.
    const secured = await connectMqtts(mqttsUrl(), tlsOf(), {
      clientId: uniqueName('k'),
      username: id,
      password: key,
    });
    clients.push(secured);
    await secured.publishAsync(`odm/iot/${id}`, JSON.stringify(collect(8)), { qos: 1 });
    expect(await stored(id)).toBe(3);
  });

  describe('revocation', () => {
    let second: TwinflowProcess;
    let secondPorts: { https: number; mqtts: number };

    beforeAll(async () => {
      secondPorts = await tlsPorts();
      second = await startTwinflow({
        roles: 'api',
        db: tf.env.MONGODB_DB,
        taskQueue: tf.env.TWINFLOW_TASK_QUEUE,
        adminKey: tf.adminKey,
        env: {
          TWINFLOW_TLS: 'on',
          TWINFLOW_PLAIN: 'off',
          TWINFLOW_DATA_DIR: dataDir,
          TWINFLOW_HTTPS_PORT: String(secondPorts.https),
          TWINFLOW_MQTTS_PORT: String(secondPorts.mqtts),
        },
      });
    });

    afterAll(async () => {
      await second?.stop();
    });

    /** The certificate connected over MQTT to both processes; each promise settles once that side closes it. */
    const connectBoth = async (cert: KeyPair) => {
      const here = await connect(cert);
      const there = await connectMqtts(`mqtts://127.0.0.1:${secondPorts.mqtts}`, tlsOf(cert), {
        clientId: uniqueName('t'),
      });
      clients.push(there);
      const closed = (client: MqttClient) =>
        new Promise<void>((resolve) => client.once('close', () => resolve()));
      return { closedHere: closed(here), closedThere: closed(there) };
    };

    it('serves no plain listener when turned off', async () => {
      expect(second.output()).not.toContain('http://');
      expect(second.output()).not.toContain('mqtt://');
      await expect(fetch(second.baseUrl + '/healthz')).rejects.toThrow();
    });

    it('stops a revoked certificate at once here, and closes its connections in the other process within the bound', async () => {
      const id = uniqueName('dev-r');
      expect((await admin.post('/north/v1/devices', { id, transport: { mqtt: true } })).status).toBe(201);
      const cert = await createClientCertificate(orgCa, id);
      const { closedHere, closedThere } = await connectBoth(cert);
      const revoked = await admin.delete(`/north/v1/devices/${id}/certificates/${fp(cert)}`);
      expect(revoked.status).toBe(200);
      await closedHere;
      expect((await collectHttps(id, cert)).status).toBe(401);
      const startedAt = Date.now();
      await closedThere;
      expect(Date.now() - startedAt).toBeLessThan(5_000);
      const secondHttps = await httpsJson(
        `https://127.0.0.1:${secondPorts.https}/south/v80/devices/${id}/collect/iot`,
        tlsOf(cert),
        'POST',
        collect(9),
      );
      expect(secondHttps.status).toBe(401);
      await expect(connect(cert)).rejects.toThrow(/Bad username or password/);
      expect(await stored(id)).toBe(0);
    });

    it("stops a deleted CA's certificates and closes their connections here at once, and in the other process, which had them cached, within the bound", async () => {
      const id = uniqueName('dev-ca');
      expect((await admin.post('/north/v1/devices', { id, transport: { mqtt: true } })).status).toBe(201);
      const ca = await createAuthority('Short-lived CA', 30);
      const registered = await admin.post('/north/v1/certificate-authorities', {
        name: 'short-lived',
        certificate: ca.certPem,
      });
      expect(registered.status).toBe(201);
      const cert = await createClientCertificate(ca, id);
      let taken = 0;
      const collectThere = async () => {
        const res = await httpsJson(
          `https://127.0.0.1:${secondPorts.https}/south/v80/devices/${id}/collect/iot`,
          tlsOf(cert),
          'POST',
          collect(taken),
        );
        if (res.status === 201) taken++;
        return res.status;
      };
      expect(await collectThere()).toBe(201);
      const { closedHere, closedThere } = await connectBoth(cert);
      const deleted = await admin.delete(`/north/v1/certificate-authorities/${fp(ca)}`);
      expect(deleted.status).toBe(204);
      await closedHere;
      expect((await collectHttps(id, cert)).status).toBe(401);
      const startedAt = Date.now();
      await eventually(async () => ((await collectThere()) === 401 ? true : undefined), 5_000, 200);
      await closedThere;
      expect(Date.now() - startedAt).toBeLessThan(5_000);
      await expect(connect(cert)).rejects.toThrow(/Bad username or password/);
      expect(await collectThere()).toBe(401);
      // Every collect the other process took before it heard of the deletion is stored, and none after.
      const temperatures = async () =>
        (await storedPoints(mongo, tf.env.MONGODB_DB as string, { deviceId: id, ds: 'temperature' })).length;
      await eventually(async () => ((await temperatures()) === taken ? true : undefined));
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await temperatures()).toBe(taken);
    });
  });

  it('refuses to start with a bad certificate file, in one clear line', async () => {
    const bad = path.join(dataDir, 'not-a-cert.pem');
    writeFileSync(bad, 'this is not a certificate\n');
    const failure = startTwinflow({
      roles: 'api',
      env: {
        TWINFLOW_TLS: 'on',
        TWINFLOW_TLS_CERT: bad,
        TWINFLOW_TLS_KEY: bad,
        TWINFLOW_HTTPS_PORT: String(await getFreePort()),
      },
    });
    await expect(failure).rejects.toThrow(
      `TwinFlow cannot start: TWINFLOW_TLS_CERT (${bad}) is not a PEM certificate\n`,
    );
  });
});
