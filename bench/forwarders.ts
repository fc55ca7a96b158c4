// Forwarders benchmark: webhook deliveries per second from the event log to a local receiver, beside bare HTTP
// POSTs per second to the same receiver (same body size, as many at once as a forwarder has lanes), same run.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NewEvent } from '../events/event-types';
import { EventRepository } from '../inventory/events.repo';
import { openInventory } from '../inventory/inventory';

export interface ForwardersBenchOptions {
  readonly base: string;
  readonly adminKey: string;
  readonly mongoUri: string;
  readonly db: string;
  readonly events: number;
  readonly devices: number;
  /** Bare POSTs in flight at once (match TWINFLOW_FORWARDER_LANES). */
  readonly concurrency: number;
  readonly say: (line: string) => void;
}

export interface ForwardersBenchResult {
  readonly bareRate: number;
  readonly deliveryRate: number;
  readonly delivered: number;
}

const fmt = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });

async function api(o: ForwardersBenchOptions, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${o.base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', 'x-apikey': o.adminKey },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function barePosts(url: string, n: number, concurrency: number, body: string): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        await res.text();
      }
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

export async function runForwardersBench(o: ForwardersBenchOptions): Promise<ForwardersBenchResult> {
  const seen = new Set<string>();
  let bare = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const id = req.headers['x-twinflow-event-id'];
      if (typeof id === 'string') seen.add(id);
      else bare++;
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const inventory = await openInventory(o.mongoUri, o.db);
  let fwdId: string | undefined;
  try {
    const sample = JSON.stringify({
      id: '1',
      type: 'device.changed',
      deviceId: 'dev-1',
      at: 0,
      body: { n: 1 },
    });
    const bareRate = await barePosts(url, o.events, o.concurrency, sample);
    o.say(
      `  bare HTTP POST to the receiver: ${fmt(bareRate)}/s (${bare} requests, ${o.concurrency} at once)`,
    );
    const org = (await api(o, 'GET', '/north/v1/me')).org as string;
    const fwd = await api(o, 'POST', '/north/v1/forwarders', {
      name: 'bench',
      destination: { kind: 'webhook', url, secret: 'bench-secret-0123456789' },
      subscription: { types: ['device.changed'] },
    });
    fwdId = fwd.id as string;
    const events: NewEvent[] = Array.from({ length: o.events }, (_, i) => ({
      type: 'device.changed',
      deviceId: `fwdbench-${i % o.devices}`,
      at: Date.now(),
      body: { n: i },
    }));
    const t0 = performance.now();
    await new EventRepository(inventory.collections).append(org, events);
    const deadline = Date.now() + 120_000 + o.events * 50;
    while (seen.size < o.events && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const deliveryRate = seen.size / ((performance.now() - t0) / 1000);
    o.say(
      `  forwarder webhook deliveries (log append to last delivery, ${o.devices} devices): ${fmt(deliveryRate)}/s (${seen.size} of ${o.events})`,
    );
    return { bareRate, deliveryRate, delivered: seen.size };
  } finally {
    if (fwdId) await api(o, 'DELETE', `/north/v1/forwarders/${fwdId}`).catch(() => undefined);
    await inventory.close();
    server.closeAllConnections();
    server.close();
  }
}
