// What TwinFlow does with MQTT devices: logs them in with their keys, stores their data through the same
// ingest pipeline as HTTP, hands their operation responses to the operations, and sends them the operations
// waiting for them as soon as they listen on their request topic.
import type { Logger } from 'pino';
import { responseEnvelopeSchema } from '../twins/operation-envelopes';
import { hashKey } from '../inventory/keys';
import { type Authenticator, authorityCredential, certificateCredential } from '../access/authenticator';
import { fingerprintOf } from '../access/pki';
import type { Principal } from '../access/principal';
import { type CollectBody, collectBodySchema } from '../ingest/collect.schema';
import type { DeviceDirectory } from '../ingest/device-directory';
import type { Ingestor } from '../ingest/ingestor';
import type { OperationsService } from '../operations/operations.service';
import { type Outcome, type Refusal, refused } from '../twins/outcomes';
import type { BrokerHooks, DeviceSession, RequestChannel } from './embedded-broker';
import type { DeviceTopic } from './topics';

const NO_PERMISSIONS: ReadonlySet<never> = new Set();

/** What the gateway needs of TwinFlow's services. */
export interface DeviceGatewayDeps {
  readonly auth: Pick<Authenticator, 'authenticateKey' | 'authenticateCertificate'>;
  readonly directory: Pick<DeviceDirectory, 'get'>;
  readonly ingestor: Pick<Ingestor, 'ingest'>;
  readonly operations: Pick<OperationsService, 'respond' | 'claimPending'>;
  /** Connector functions: a device's own payload format as a collect body (undefined: none matches). */
  readonly translator: {
    translate(
      org: string,
      message: { deviceId: string; deviceType: string; topic: string },
      payload: Uint8Array,
    ): Promise<Outcome<CollectBody | undefined>>;
  };
}

/** A refusal MQTT cannot answer: the message is acknowledged and dropped, and the reason logged. */
class Dropped extends Error {
  constructor(readonly refusal: Refusal) {
    super(refusal.message);
  }
}

/** The value, or a drop for a refusal; busy (UNAVAILABLE) throws on, leaving the message unacknowledged. */
function settle<T>(outcome: Outcome<T>): T {
  if (outcome.ok) return outcome.value;
  if (outcome.code === 'UNAVAILABLE') throw new Error(outcome.message);
  throw new Dropped(outcome);
}

/** Counters of what devices sent that could not be used (acknowledged and dropped, with the reason logged). */
export interface GatewayCounters {
  stored: number;
  responses: number;
  rejected: number;
  delivered: number;
}

export class DeviceGateway implements BrokerHooks {
  private broker: RequestChannel | undefined;
  private readonly deliveries = new Map<string, Promise<void>>();
  readonly counters: GatewayCounters = { stored: 0, responses: 0, rejected: 0, delivered: 0 };

  constructor(
    private readonly services: DeviceGatewayDeps,
    private readonly logger: Logger,
  ) {}

  attach(broker: RequestChannel): void {
    this.broker = broker;
  }

  async authenticate(username: string, password: string): Promise<DeviceSession | undefined> {
    const result = await this.services.auth.authenticateKey(password);
    if (!result.ok) return undefined;
    const p = result.principal;
    // Device keys only, and the username must be the key's own device.
    if (p.kind !== 'device' || p.deviceId !== username) return undefined;
    const device = await this.services.directory.get(p.org, username);
    if (!device?.active) return undefined;
    return { org: p.org, deviceId: username, keyId: p.id, keyHash: hashKey(password) };
  }

  /** A device logging in with its client certificate; a username, if given, must be the device it names. */
  async authenticateCertificate(
    der: Buffer,
    username: string | undefined,
  ): Promise<DeviceSession | undefined> {
    const result = await this.services.auth.authenticateCertificate(der);
    if (!result.ok) return undefined;
    const p = result.principal;
    if (p.deviceId === undefined || (username !== undefined && username !== p.deviceId)) return undefined;
    const device = await this.services.directory.get(p.org, p.deviceId);
    if (!device?.active) return undefined;
    const authority = result.certificate?.authority;
    return {
      org: p.org,
      deviceId: p.deviceId,
      keyId: p.id,
      keyHash: certificateCredential(fingerprintOf(der)),
      ...(authority !== undefined ? { authority: authorityCredential(authority) } : {}),
    };
  }

  /** A device known to the inventory and active, for messages that came through an external broker. */
  async brokerSession(org: string, deviceId: string): Promise<DeviceSession | undefined> {
    const device = await this.services.directory.get(org, deviceId);
    return device?.active ? { org, deviceId, keyId: 'broker', keyHash: '' } : undefined;
  }

  async received(session: DeviceSession, topic: DeviceTopic, payload: Buffer): Promise<void> {
    try {
      if (topic.kind === 'data') await this.data(session, topic, payload);
      else if (topic.kind === 'response') await this.response(session, payload);
    } catch (err) {
      // The sender's mistake: acknowledged, not stored, counted and logged (MQTT has no error reply).
      if (err instanceof Dropped) {
        this.counters.rejected += 1;
        this.logger.warn(
          { deviceId: session.deviceId, org: session.org, reason: err.message },
          'MQTT message refused',
        );
        return;
      }
      throw err; // storage trouble: the broker leaves the message unacknowledged
    }
  }

  listening(session: DeviceSession): void {
    void this.deliverPending(session.org, session.deviceId);
  }

  /**
   * Sends the device the operations waiting for it, if it listens now. One delivery per device at a time;
   * an operation is handed over once (the twin marks it delivered), then published with QoS 1.
   */
  deliverPending(org: string, deviceId: string): Promise<void> {
    const key = `${org}/${deviceId}`;
    const previous = this.deliveries.get(key) ?? Promise.resolve();
    const next = previous
      .then(async () => {
        const broker = this.broker;
        if (!broker?.isListening(org, deviceId)) return;
        for (;;) {
          const claimed = await this.services.operations.claimPending(org, deviceId);
          if (!claimed.ok) return;
          const envelopes = claimed.value;
          for (const envelope of envelopes) {
            await broker.publishRequest(org, deviceId, JSON.stringify(envelope));
            this.counters.delivered += 1;
          }
          if (envelopes.length < 100) return;
        }
      })
      .catch((err: unknown) =>
        this.logger.warn({ err, org, deviceId }, 'could not send pending operations over MQTT'),
      )
      .finally(() => {
        if (this.deliveries.get(key) === next) this.deliveries.delete(key);
      });
    this.deliveries.set(key, next);
    return next;
  }

  private principal(session: DeviceSession): Principal {
    return {
      kind: 'device',
      org: session.org,
      id: session.keyId,
      role: 'device',
      permissions: NO_PERMISSIONS,
      platformAdmin: false,
      deviceId: session.deviceId,
    };
  }

  /**
   * An OpenGate collect body is stored as it is. Anything else (a custom sub-topic, or a payload that is not
   * a collect body) goes to the organization's connector functions whose MQTT topic filter matches.
   */
  private async data(session: DeviceSession, topic: Extract<DeviceTopic, { kind: 'data' }>, payload: Buffer) {
    const principal = this.principal(session);
    if (topic.suffix === undefined) {
      const body = collectBodySchema.safeParse(tryJson(payload));
      if (body.success) return this.store(principal, session.deviceId, body.data);
      const translated = await this.translate(session, `odm/iot/${session.deviceId}`, payload);
      if (!translated) {
        const why = body.error.issues[0]?.message ?? 'invalid';
        throw new Dropped(
          refused(
            'INVALID_ARGUMENT',
            `not an OpenGate collect body (${why}), and no connector function takes it`,
          ),
        );
      }
      return this.store(principal, session.deviceId, translated);
    }
    const fullTopic = `odm/iot/${session.deviceId}/${topic.suffix}`;
    const translated = await this.translate(session, fullTopic, payload);
    if (!translated) throw new Dropped(refused('NOT_FOUND', `no connector function translates ${fullTopic}`));
    return this.store(principal, session.deviceId, translated);
  }

  private async store(principal: Principal, deviceId: string, body: CollectBody): Promise<void> {
    settle(await this.services.ingestor.ingest(principal, deviceId, body, 'mqtt'));
    this.counters.stored += 1;
  }

  private async translate(session: DeviceSession, topic: string, payload: Buffer) {
    const device = await this.services.directory.get(session.org, session.deviceId);
    if (!device) throw new Dropped(refused('NOT_FOUND', `device ${session.deviceId} is not provisioned`));
    const translated = await this.services.translator.translate(
      session.org,
      { deviceId: session.deviceId, deviceType: device.twinType, topic },
      payload,
    );
    return settle(translated);
  }

  private async response(session: DeviceSession, payload: Buffer) {
    const body = responseEnvelopeSchema.safeParse(parseJson(payload));
    if (!body.success) throw new Dropped(refused('INVALID_ARGUMENT', 'not an OpenGate operation response'));
    settle(await this.services.operations.respond(session.org, session.deviceId, body.data));
    this.counters.responses += 1;
  }
}

/** The payload as JSON, or undefined when it is not JSON (a connector function may still read it). */
function tryJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8')) as unknown;
  } catch {
    throw new Dropped(refused('BAD_REQUEST', 'the payload is not JSON'));
  }
}
