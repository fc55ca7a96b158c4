// TLS clients for the integration tests and the benchmark: HTTPS requests and MQTT connections with an
// optional client certificate, and mosquitto_pub with --cafile/--cert/--key.
import { execFile } from 'node:child_process';
import https from 'node:https';
import mqtt, { type MqttClient } from 'mqtt';

export interface ClientTls {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface HttpsAnswer {
  readonly status: number;
  readonly body: any;
}

/** One HTTPS request with JSON in and out; a refused handshake rejects. */
export function httpsJson(
  url: string,
  tls: ClientTls,
  method: string,
  body?: unknown,
  headers: Record<string, string> = {},
  agent?: https.Agent,
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      url,
      {
        method,
        ca: tls.ca,
        ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}),
        ...(agent ? { agent } : { agent: false }),
        headers: { ...(text !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      },
      (res) => {
        let data = '';
        res.on('data', (d: Buffer) => (data += d.toString()));
        res.on('end', () => {
          let parsed: unknown = data;
          try {
            parsed = data === '' ? undefined : JSON.parse(data);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

/** An MQTT connection over TLS; resolves once connected, rejects with the broker's refusal. */
export function connectMqtts(
  url: string,
  tls: ClientTls,
  login: { clientId: string; username?: string; password?: string },
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      ...login,
      ca: tls.ca,
      ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}),
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/** mosquitto_pub over TLS with files; resolves with its exit code and output. */
export function mosquittoPub(args: {
  port: number;
  caFile: string;
  certFile: string;
  keyFile: string;
  topic: string;
  message: string;
}): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      'mosquitto_pub',
      [
        ...['-h', '127.0.0.1', '-p', String(args.port), '-q', '1', '-i', `pub-${process.pid}`],
        ...['--cafile', args.caFile, '--cert', args.certFile, '--key', args.keyFile],
        ...['-t', args.topic, '-m', args.message],
      ],
      { timeout: 15_000 },
      (err, stdout, stderr) => {
        if (err?.code === 'ENOENT')
          return resolve({
            code: 127,
            output: 'mosquitto_pub is missing: apt-get install mosquitto-clients',
          });
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}
