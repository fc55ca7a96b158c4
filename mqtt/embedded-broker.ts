// The embedded MQTT broker (aedes) on the OpenGate topics. Devices log in with their id and key, publish only
// their own data and responses, and subscribe only to their own requests. A device's QoS 1 message is
// acknowledged only once TwinFlow has stored what it carried: the broker hands the message to TwinFlow
// before it answers PUBACK, and a storage failure closes the connection unanswered, so the device sends again.
// The same broker listens on plain TCP and on TLS, where a device may log in with its client certificate.
import net from 'node:net';
import tls from 'node:tls';
import type {
  Aedes,
  AedesOptions,
  AedesPublishPacket,
  AuthenticateError,
  Client,
  PublishPacket,
  Subscription,
} from 'aedes';
import type { Logger } from 'pino';
import {
  deviceSubscribeAllowed,
  devicePublishAllowed,
  type DeviceTopic,
  internalRequestTopic,
  parseDeviceTopic,
  REQUEST_PREFIX,
} from './topics';

export interface DeviceSession {
  readonly org: string;
  readonly deviceId: string;
  /** The public id of the key it logged in with. */
  readonly keyId: string;
  /**
   * SHA-256 of the key it logged in with, or `cert:<fingerprint>` of its certificate, so that revoking the
   * credential can close the connection.
   */
  readonly keyHash: string;
  /** `ca:<org>/<fingerprint>` of the CA its certificate was trusted through, so that deleting the CA closes it. */
  readonly authority?: string;
}

export interface BrokerHooks {
  /** A device's login: its session, or undefined to refuse (bad id or key). */
  authenticate(username: string, password: string): Promise<DeviceSession | undefined>;
  /** A login without a key over TLS: the client certificate (DER) names the device (username optional). */
  authenticateCertificate(der: Buffer, username: string | undefined): Promise<DeviceSession | undefined>;
  /**
   * A message from a device on one of its topics. Resolving acknowledges it (store first); rejecting leaves it
   * unacknowledged and closes the connection, so the device sends it again after reconnecting.
   */
  received(session: DeviceSession, topic: DeviceTopic, payload: Buffer): Promise<void>;
  /** The device now listens on its request topic: pending operations can go out. */
  listening(session: DeviceSession): void;
}

/** Where operation requests go out: the embedded broker, or an external one through the adapter. */
export interface RequestChannel {
  /** Whether the device can be sent a request now (connected and subscribed, where that can be known). */
  isListening(org: string, deviceId: string): boolean;
  publishRequest(org: string, deviceId: string, payload: string): Promise<void>;
  counters(): Readonly<Record<string, number>>;
  close(): Promise<void>;
}

export interface BrokerOptions {
  readonly logger: Logger;
}

export interface ListenOptions {
  readonly port: number;
  readonly host: string;
  /** Listen on TLS with these options (certificate, key, minimum version, client certificates asked for). */
  readonly tls?: tls.TlsOptions;
}

/** The client certificate a device presented on a TLS connection, if any (DER). */
function peerCertificateOf(client: Client): Buffer | undefined {
  const conn = (client as unknown as { conn?: unknown }).conn;
  if (!(conn instanceof tls.TLSSocket)) return undefined;
  const peer = conn.getPeerCertificate();
  return peer && Buffer.isBuffer(peer.raw) && peer.raw.length > 0 ? peer.raw : undefined;
}

const sessionKey = (org: string, deviceId: string) => `${org}/${deviceId}`;

type Stats = Record<'accepted' | 'refusedLogins' | 'refusedTopics' | 'storeFailures', number>;

/** What the broker's aedes handlers share: the hooks, the figures and the sessions of logged-in devices. */
interface HandlerContext {
  readonly hooks: BrokerHooks;
  readonly stats: Stats;
  readonly log: BrokerOptions['logger'];
  readonly sessions: WeakMap<Client, DeviceSession>;
  /** Devices connected and subscribed to their request topic, by `${org}/${deviceId}`. */
  readonly listeners: Map<string, Client>;
}

/** Device login with its id as username and its key as password. */
type Handler<K extends keyof AedesOptions> = NonNullable<AedesOptions[K]>;

function authenticateWith(ctx: HandlerContext): Handler<'authenticate'> {
  return (client, username, password, done) => {
    const refuse = () => {
      ctx.stats.refusedLogins += 1;
      const err = new Error('bad device id or key') as AuthenticateError;
      err.returnCode = 4; // BAD_USERNAME_OR_PASSWORD
      done(err, false);
    };
    // An explicit key wins; without one, the client certificate of a TLS connection decides.
    const certificate = password ? undefined : peerCertificateOf(client);
    if (username !== undefined && username.length > 128) return refuse();
    let login: Promise<DeviceSession | undefined>;
    if (certificate) login = ctx.hooks.authenticateCertificate(certificate, username || undefined);
    else if (!username || !password || password.length > 256) return refuse();
    else login = ctx.hooks.authenticate(username, password.toString('utf8'));
    login.then(
      (session) => {
        if (!session) return refuse();
        ctx.sessions.set(client, session);
        done(null, true);
      },
      (err: unknown) => {
        ctx.log.warn({ err }, 'MQTT login could not be checked');
        const e = new Error('server unavailable') as AuthenticateError;
        e.returnCode = 3; // SERVER_UNAVAILABLE
        done(e, false);
      },
    );
  };
}

/** A device publishes only on its own topics; what it sends is acknowledged once stored. */
function authorizePublishWith(ctx: HandlerContext): Handler<'authorizePublish'> {
  return (client, packet, callback) => {
    if (!client) return callback(null); // a will published by the broker itself
    const session = ctx.sessions.get(client);
    if (!session || !devicePublishAllowed(session.deviceId, packet.topic)) {
      ctx.stats.refusedTopics += 1;
      return callback(new Error(`not allowed to publish on ${packet.topic}`));
    }
    const topic = parseDeviceTopic(packet.topic);
    if (!topic) return callback(new Error(`not allowed to publish on ${packet.topic}`));
    ctx.hooks.received(session, topic, packet.payload as Buffer).then(
      () => {
        ctx.stats.accepted += 1;
        // Consumed here: nothing else subscribes to device data, and nothing is retained.
        packet.retain = false;
        packet.topic = `tf/${session.org}/${packet.topic}`;
        callback(null);
      },
      (err: unknown) => {
        ctx.stats.storeFailures += 1;
        ctx.log.warn({ err, deviceId: session.deviceId }, 'MQTT message not stored; left unacknowledged');
        callback(err instanceof Error ? err : new Error(String(err)));
      },
    );
  };
}

/** Subscriptions to a device's own request topic map to an internal topic per organization. */
function authorizeSubscribeWith(ctx: HandlerContext): Handler<'authorizeSubscribe'> {
  return (client, sub, callback) => {
    const session = ctx.sessions.get(client);
    if (!session || !deviceSubscribeAllowed(session.deviceId, sub.topic)) {
      ctx.stats.refusedTopics += 1;
      // Refused in the SUBACK (0x80); the connection stays.
      return callback(null, null);
    }
    callback(null, { ...sub, topic: internalRequestTopic(session.org, session.deviceId) });
  };
}

/** Requests go out on the topic the device subscribed to, not the internal one. */
function authorizeForwardWith(ctx: HandlerContext): Handler<'authorizeForward'> {
  return (client, packet) => {
    const session = ctx.sessions.get(client);
    if (!session) return null;
    const internal = internalRequestTopic(session.org, session.deviceId);
    if (packet.topic !== internal) return null;
    const copy = Object.create(Object.getPrototypeOf(packet) as object) as AedesPublishPacket;
    return Object.assign(copy, packet, { topic: `${REQUEST_PREFIX}${session.deviceId}` });
  };
}

/** Tracks which devices listen on their request topic, and tells the hooks when one starts. */
function trackListeners(aedes: Aedes, ctx: HandlerContext): void {
  aedes.on('subscribe', (subs: Subscription[], client: Client) => {
    const session = ctx.sessions.get(client);
    if (!session) return;
    // The event carries the topics as the device sent them, with the QoS granted (128: refused).
    const own = `${REQUEST_PREFIX}${session.deviceId}`;
    if (subs.some((s) => s.topic === own && (s.qos as number) !== 128)) {
      ctx.listeners.set(sessionKey(session.org, session.deviceId), client);
      ctx.hooks.listening(session);
    }
  });
  aedes.on('clientDisconnect', (client: Client) => {
    const session = ctx.sessions.get(client);
    if (!session) return;
    const key = sessionKey(session.org, session.deviceId);
    if (ctx.listeners.get(key) === client) ctx.listeners.delete(key);
  });
  aedes.on('clientError', (client: Client, err: Error) => {
    ctx.log.debug({ err: err.message, clientId: client.id }, 'MQTT client error');
  });
}

export class EmbeddedBroker implements RequestChannel {
  private readonly servers: net.Server[] = [];

  private constructor(
    private readonly stats: Stats,
    private readonly sessions: WeakMap<Client, DeviceSession>,
    private readonly listeners: Map<string, Client>,
    private readonly aedes: Aedes,
  ) {}

  /** The broker, listening nowhere yet: see listen(). */
  static async start(options: BrokerOptions, hooks: BrokerHooks): Promise<EmbeddedBroker> {
    // aedes is an ES module; Node 20 loads it from CommonJS through require(esm).
    const { Aedes } = await import('aedes');
    const ctx: HandlerContext = {
      hooks,
      stats: { accepted: 0, refusedLogins: 0, refusedTopics: 0, storeFailures: 0 },
      log: options.logger,
      sessions: new WeakMap(),
      listeners: new Map(),
    };
    const aedes = await Aedes.createBroker({
      // A device that never sends PUBREL or floods subscriptions must not grow the broker without bound.
      maxTopicLevels: 16,
      authenticate: authenticateWith(ctx),
      authorizePublish: authorizePublishWith(ctx),
      authorizeSubscribe: authorizeSubscribeWith(ctx),
      authorizeForward: authorizeForwardWith(ctx),
    });
    trackListeners(aedes, ctx);
    return new EmbeddedBroker(ctx.stats, ctx.sessions, ctx.listeners, aedes);
  }

  /** Accepts devices on a port, plain or TLS; answers the port bound (for port 0). */
  async listen(options: ListenOptions): Promise<number> {
    const server = options.tls
      ? tls.createServer(options.tls, this.aedes.handle)
      : net.createServer(this.aedes.handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: options.port, host: options.host, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // A failed TLS handshake (no or a bad certificate chain) is the device's problem, not the broker's.
    server.on('tlsClientError', () => undefined);
    this.servers.push(server);
    const address = server.address();
    return typeof address === 'object' && address ? address.port : options.port;
  }

  /** Whether the device is connected and listening on its request topic. */
  isListening(org: string, deviceId: string): boolean {
    const client = this.listeners.get(sessionKey(org, deviceId));
    return client !== undefined && client.connected && !client.closed;
  }

  /** Publishes an operation request to the device (QoS 1). */
  publishRequest(org: string, deviceId: string, payload: string): Promise<void> {
    const packet: PublishPacket = {
      cmd: 'publish',
      topic: internalRequestTopic(org, deviceId),
      payload: Buffer.from(payload, 'utf8'),
      qos: 1,
      retain: false,
      dup: false,
    };
    return new Promise((resolve, reject) =>
      this.aedes.publish(packet, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Closes the connections of devices that logged in with any of these keys, or through these CAs (revoked). */
  disconnectKeys(hashes: readonly string[]): number {
    if (hashes.length === 0) return 0;
    const revoked = new Set(hashes);
    const isRevoked = (s: DeviceSession) =>
      revoked.has(s.keyHash) || (s.authority !== undefined && revoked.has(s.authority));
    let closed = 0;
    for (const client of this.listeners.values()) {
      const session = this.sessions.get(client);
      if (session && isRevoked(session)) {
        client.close();
        closed += 1;
      }
    }
    // Devices connected but not listening for requests are found through the broker's client list.
    const clients = (this.aedes as unknown as { clients?: Record<string, Client> }).clients ?? {};
    for (const client of Object.values(clients)) {
      const session = this.sessions.get(client);
      if (session && isRevoked(session) && !client.closed) {
        client.close();
        closed += 1;
      }
    }
    return closed;
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.stats, connected: this.aedes.connectedClients };
  }

  async close(): Promise<void> {
    const serversClosed = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await Promise.all(serversClosed);
  }
}
