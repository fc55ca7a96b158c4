// The adapter for an external MQTT broker (MQTT_URL): TwinFlow subscribes to the OpenGate device topics with
// a persistent session and acknowledges each QoS 1 message only once what it carried is stored. Several
// TwinFlow instances share the load through a shared subscription (`$share/<group>/...`) when the broker
// supports it. The broker checks device logins and topic rights (see the README: it can ask TwinFlow).
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { BrokerHooks, DeviceSession, RequestChannel } from './embedded-broker';
import { parseDeviceTopic, REQUEST_PREFIX } from './topics';

export interface ExternalAdapterOptions {
  readonly url: string;
  /** The organization the broker's devices belong to (one broker serves one organization). */
  readonly org: string;
  readonly clientId: string;
  /** Share the subscriptions among TwinFlow instances (`$share/<group>/...`), or subscribe plainly. */
  readonly sharedGroup: string | undefined;
  /**
   * Connections in the shared group. mqtt.js hands a connection its next message only once the last one is
   * acknowledged, so each connection has one message in flight; several let the group commit gather many.
   * Without a shared group there is one (plain subscribers would each get every message).
   */
  readonly connections?: number;
  readonly logger: Logger;
}

type Hooks = Pick<BrokerHooks, 'received'>;
type SessionOf = (org: string, deviceId: string) => Promise<DeviceSession | undefined>;

export class ExternalMqttAdapter implements RequestChannel {
  readonly stats = { accepted: 0, storeFailures: 0, unknownTopics: 0 };

  private constructor(
    private readonly clients: readonly MqttClient[],
    private readonly options: ExternalAdapterOptions,
  ) {}

  static async start(options: ExternalAdapterOptions, hooks: Hooks, deviceSession: SessionOf) {
    const count = options.sharedGroup ? Math.max(1, options.connections ?? 1) : 1;
    // The first connection keeps the configured client id, so an existing persistent session carries on.
    const ids = Array.from({ length: count }, (_, i) =>
      i === 0 ? options.clientId : `${options.clientId}-${i}`,
    );
    const clients = ids.map((clientId) =>
      mqtt.connect(options.url, {
        clientId,
        clean: false, // the broker keeps what arrives while TwinFlow is away, and what it has not acknowledged
        reconnectPeriod: 1_000,
        connectTimeout: 10_000,
      }),
    );
    const adapter = new ExternalMqttAdapter(clients, options);
    for (const client of clients) adapter.wire(client, hooks, deviceSession);
    try {
      await Promise.all(clients.map((client) => connected(client, options.url)));
    } catch (err) {
      await adapter.close();
      throw err;
    }
    return adapter;
  }

  /**
   * mqtt.js reads a connection's next message only once handleMessage calls back, and sends the PUBACK
   * then: one message in flight per connection, so a group commit would gather at most one message per
   * connection. So handleMessage calls back at once and the PUBACK itself waits (deferPubacks) until what
   * the message carried is stored: many messages per connection are in flight (as many as the broker
   * allows, 20 by default on mosquitto), and still none is acknowledged before it is stored. A message
   * TwinFlow could not store stays unacknowledged, and the connection is dropped so that the broker sends
   * it again.
   */
  private wire(client: MqttClient, hooks: Hooks, deviceSession: SessionOf): void {
    const { org, logger: log } = this.options;
    const prefix = this.options.sharedGroup ? `$share/${this.options.sharedGroup}/` : '';
    const storing = deferPubacks(client, (err, topic) => {
      this.stats.storeFailures += 1;
      log.warn({ err, topic }, 'MQTT message not stored; reconnecting so that the broker sends it again');
    });
    client.handleMessage = (packet, callback) => {
      const topic = packet.topic;
      const parsed = parseDeviceTopic(topic.replace(/^\$share\/[^/]+\//, ''));
      if (!parsed || parsed.kind === 'request') {
        this.stats.unknownTopics += 1;
        callback();
        return;
      }
      const stored = deviceSession(org, parsed.deviceId).then(async (session) => {
        if (session) await hooks.received(session, parsed, packet.payload as Buffer);
        else
          log.warn(
            { org, deviceId: parsed.deviceId },
            'MQTT message from a device TwinFlow does not know; dropped',
          );
        this.stats.accepted += 1;
      });
      storing(packet, stored, topic);
      callback();
    };
    client.on('connect', (connack) => {
      if (connack.sessionPresent) return; // the broker kept the subscriptions
      client
        // `odm/iot/+/#` also matches `odm/iot/{id}` (`#` matches no level too).
        .subscribeAsync([`${prefix}odm/iot/+/#`, `${prefix}odm/response/+`], { qos: 1 })
        .catch((err: unknown) => log.error({ err }, 'could not subscribe to the device topics'));
    });
    client.on('error', (err) => log.warn({ err: err.message }, 'MQTT broker connection error'));
  }

  /** The broker queues requests for devices with a persistent session; TwinFlow cannot see who is online. */
  isListening(org: string): boolean {
    return org === this.options.org && this.clients.some((c) => c.connected);
  }

  async publishRequest(_org: string, deviceId: string, payload: string): Promise<void> {
    const client = this.clients.find((c) => c.connected) ?? this.clients[0]!;
    await client.publishAsync(`${REQUEST_PREFIX}${deviceId}`, payload, { qos: 1 });
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.stats, connected: this.clients.filter((c) => c.connected).length };
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.endAsync()));
  }
}

type SendPacket = (packet: { cmd: string; messageId?: number }, cb?: () => void, ...rest: unknown[]) => void;

/**
 * Holds each QoS 1 message's PUBACK until its `stored` promise resolves; when it rejects, drops the
 * connection instead (the broker sends the message again). Works on mqtt.js's packet writer (`_sendPacket`,
 * which sends the PUBACK after handleMessage calls back): the parser goes on to the next message at once.
 */
function deferPubacks(client: MqttClient, failed: (err: unknown, topic: string) => void) {
  const pending = new Map<number, Promise<void>>();
  const target = client as unknown as { _sendPacket?: SendPacket };
  // mqtt.js's packet writer is not public API: a release without it must fail at start, not lose acks.
  if (typeof target._sendPacket !== 'function')
    throw new Error('this mqtt.js release has no _sendPacket: the external adapter cannot hold back PUBACKs');
  const send = target._sendPacket.bind(client);
  target._sendPacket = (packet, cb, ...rest) => {
    const stored = packet.cmd === 'puback' ? pending.get(packet.messageId ?? -1) : undefined;
    if (!stored) return send(packet, cb, ...rest);
    pending.delete(packet.messageId!);
    cb?.();
    const stream = client.stream;
    stored.then(
      // A PUBACK for a connection that has gone since would name another message: the broker resends.
      () => (client.stream === stream && client.connected ? send(packet, undefined, ...rest) : undefined),
      () => stream?.destroy(),
    );
  };
  return (packet: { qos: number; messageId?: number }, stored: Promise<void>, topic: string) => {
    const observed = stored.catch((err: unknown) => {
      failed(err, topic);
      throw err;
    });
    if (packet.qos === 1 && packet.messageId !== undefined) pending.set(packet.messageId, observed);
    else observed.catch(() => undefined);
  };
}

/** Resolves on the client's first connection, or fails after 15 s. */
function connected(client: MqttClient, url: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`could not connect to the MQTT broker at ${redact(url)}`)),
      15_000,
    );
    client.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const redact = (url: string) => url.replace(/\/\/([^@/]+)@/, '//***@');
