// Sends one event to a destination: a signed HTTPS webhook request or a QoS 1 MQTT publish. Answers what the
// destination made of it, sorted into delivered, refused for good (dead letter) and worth another try.
import { connectAsync, type MqttClient } from 'mqtt';
import type { FleetEvent } from '../events/event-types';
import type { Destination, MqttDestination, WebhookDestination } from '../inventory/forwarders.repo';
import { SIGNATURE_HEADER, signBody } from './signing';

export const EVENT_ID_HEADER = 'X-TwinFlow-Event-Id';
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
export const FORWARDER_HEADER = 'X-TwinFlow-Forwarder';
/** A receiver's answer is cut to this many characters in errors and test answers. */
const SNIPPET_CHARS = 1_024;

export type DeliveryResult =
  | { readonly kind: 'delivered'; readonly status?: number; readonly snippet: string; readonly ms: number }
  /** The destination refused this event for good (4xx but 408/429): a dead letter. */
  | { readonly kind: 'refused'; readonly status: number; readonly error: string; readonly ms: number }
  /** Network error, timeout, 5xx, 408, 429: the same event later. */
  | { readonly kind: 'retry'; readonly status?: number; readonly error: string; readonly ms: number };

export interface Envelope {
  readonly forwarderId: string;
  /** Same event, same key: `${forwarderId}-${seq}` (a test send has its own). */
  readonly idempotencyKey: string;
  readonly event: FleetEvent;
  /** The body as sent (JSON text): the event itself, or what the connector made of it. */
  readonly body: string;
}

export interface DeliveryOptions {
  readonly timeoutMs: number;
  readonly now: () => number;
  readonly mqtt: MqttClients;
}

export async function deliver(
  destination: Destination,
  envelope: Envelope,
  o: DeliveryOptions,
): Promise<DeliveryResult> {
  return destination.kind === 'webhook'
    ? deliverWebhook(destination, envelope, o)
    : deliverMqtt(destination, envelope, o);
}

const RETRYABLE_4XX = new Set([408, 425, 429]);

async function deliverWebhook(
  d: WebhookDestination,
  e: Envelope,
  o: DeliveryOptions,
): Promise<DeliveryResult> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const headers: Record<string, string> = {};
  for (const h of d.headers) headers[h.name] = h.value;
  Object.assign(headers, {
    'content-type': 'application/json',
    [EVENT_ID_HEADER]: e.event.id,
    [IDEMPOTENCY_HEADER]: e.idempotencyKey,
    [FORWARDER_HEADER]: e.forwarderId,
    [SIGNATURE_HEADER]: signBody(d.secret, e.body, o.now()),
  });
  let res: Response;
  let text: string;
  try {
    res = await fetch(d.url, {
      method: 'POST',
      headers,
      body: e.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    text = (await res.text()).slice(0, SNIPPET_CHARS);
  } catch (err) {
    return { kind: 'retry', error: describe(err), ms: ms() };
  }
  if (res.status >= 200 && res.status < 300)
    return { kind: 'delivered', status: res.status, snippet: text, ms: ms() };
  const error = `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
  if (res.status >= 400 && res.status < 500 && !RETRYABLE_4XX.has(res.status))
    return { kind: 'refused', status: res.status, error, ms: ms() };
  return { kind: 'retry', status: res.status, error, ms: ms() };
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return 'the receiver did not answer in time';
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `${e.message} (${cause})` : e.message;
}

async function deliverMqtt(d: MqttDestination, e: Envelope, o: DeliveryOptions): Promise<DeliveryResult> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    const client = await o.mqtt.get(d, o.timeoutMs);
    await withTimeout(client.publishAsync(d.topic, e.body, { qos: 1 }), o.timeoutMs);
    return { kind: 'delivered', snippet: '', ms: ms() };
  } catch (err) {
    o.mqtt.drop(d);
    return { kind: 'retry', error: describe(err), ms: ms() };
  }
}

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T> =>
  Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('the broker did not acknowledge in time')), ms).unref(),
    ),
  ]);

/** One connection per external broker and credentials, shared by the forwarders of this process. */
export class MqttClients {
  private readonly clients = new Map<string, Promise<MqttClient>>();

  private static keyOf(d: MqttDestination): string {
    return JSON.stringify([d.url, d.username ?? '', d.password ?? '']);
  }

  get(d: MqttDestination, timeoutMs: number): Promise<MqttClient> {
    const key = MqttClients.keyOf(d);
    let client = this.clients.get(key);
    if (!client) {
      client = connectAsync(d.url, {
        ...(d.username !== undefined ? { username: d.username } : {}),
        ...(d.password !== undefined ? { password: d.password } : {}),
        connectTimeout: timeoutMs,
        reconnectPeriod: 0,
      });
      client.catch(() => this.clients.delete(key));
      this.clients.set(key, client);
    }
    return client;
  }

  drop(d: MqttDestination): void {
    const key = MqttClients.keyOf(d);
    const client = this.clients.get(key);
    this.clients.delete(key);
    void client?.then((c) => c.endAsync(true)).catch(() => undefined);
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((p) => p.then((c) => c.endAsync(true)).catch(() => undefined)));
  }
}
