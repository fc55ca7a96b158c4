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
  readonly logger: Logger;
}

export class ExternalMqttAdapter implements RequestChannel {
  readonly stats = { accepted: 0, storeFailures: 0, unknownTopics: 0 };

  private constructor(
    private readonly client: MqttClient,
    private readonly options: ExternalAdapterOptions,
  ) {}

  static async start(
    options: ExternalAdapterOptions,
    hooks: Pick<BrokerHooks, 'received'>,
    deviceSession: (org: string, deviceId: string) => Promise<DeviceSession | undefined>,
  ): Promise<ExternalMqttAdapter> {
    const log = options.logger;
    const prefix = options.sharedGroup ? `$share/${options.sharedGroup}/` : '';
    const client = mqtt.connect(options.url, {
      clientId: options.clientId,
      clean: false, // the broker keeps what arrives while TwinFlow is away, and what it has not acknowledged
      reconnectPeriod: 1_000,
      connectTimeout: 10_000,
    });
    const adapter = new ExternalMqttAdapter(client, options);
    // mqtt.js sends a QoS 1 message's PUBACK when this calls back, and reads the next message then. So
    // the PUBACK goes only once what the message carried is stored; a message TwinFlow could not store
    // stays unacknowledged, and the connection is dropped so that the broker sends it again.
    client.handleMessage = (packet, callback) => {
      const topic = packet.topic;
      const parsed = parseDeviceTopic(topic.replace(/^\$share\/[^/]+\//, ''));
      if (!parsed || parsed.kind === 'request') {
        adapter.stats.unknownTopics += 1;
        callback();
        return;
      }
      deviceSession(options.org, parsed.deviceId)
        .then(async (session) => {
          if (session) await hooks.received(session, parsed, packet.payload as Buffer);
          else
            log.warn(
              { org: options.org, deviceId: parsed.deviceId },
              'MQTT message from a device TwinFlow does not know; dropped',
            );
          adapter.stats.accepted += 1;
          callback();
        })
        .catch((err: unknown) => {
          adapter.stats.storeFailures += 1;
          log.warn({ err, topic }, 'MQTT message not stored; reconnecting so that the broker sends it again');
          callback(err instanceof Error ? err : new Error(String(err)));
          client.stream?.destroy();
        });
    };
    client.on('connect', (connack) => {
      if (connack.sessionPresent) return; // the broker kept the subscriptions
      client
        .subscribeAsync(
          // `odm/iot/+/#` also matches `odm/iot/{id}` (`#` matches no level too).
          [`${prefix}odm/iot/+/#`, `${prefix}odm/response/+`],
          { qos: 1 },
        )
        .catch((err: unknown) => log.error({ err }, 'could not subscribe to the device topics'));
    });
    client.on('error', (err) => log.warn({ err: err.message }, 'MQTT broker connection error'));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`could not connect to the MQTT broker at ${redact(options.url)}`)),
        15_000,
      );
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return adapter;
  }

  /** The broker queues requests for devices with a persistent session; TwinFlow cannot see who is online. */
  isListening(org: string): boolean {
    return org === this.options.org && this.client.connected;
  }

  async publishRequest(_org: string, deviceId: string, payload: string): Promise<void> {
    await this.client.publishAsync(`${REQUEST_PREFIX}${deviceId}`, payload, { qos: 1 });
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.stats, connected: this.client.connected ? 1 : 0 };
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

const redact = (url: string) => url.replace(/\/\/([^@/]+)@/, '//***@');
