// Event log benchmark: the time from an alarm being raised on a twin to its event reaching a live stream and a
// webhook, with many streams open. Meters' VOLTAGE alarm is raised (voltage out of tolerance) and cleared (back
// in tolerance) in rounds; each raise's `at` is when the twin raised it, each arrival is timed where it lands.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EventsBenchOptions {
  readonly base: string;
  readonly adminKey: string;
  readonly streams: number;
  readonly meters: number;
  readonly rounds: number;
  readonly say: (line: string) => void;
}

export interface EventsBenchResult {
  readonly stream: { p50: number; p99: number; n: number };
  readonly webhook: { p50: number; p99: number; n: number };
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits });
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function call(o: EventsBenchOptions, method: string, path: string, body?: unknown, key = o.adminKey) {
  const res = await fetch(`${o.base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', 'x-apikey': key },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Opens an SSE stream and calls `onEvent` with each event's data and its arrival time; answers a closer. */
async function openStream(o: EventsBenchOptions, query: string, onEvent: (data: any, at: number) => void) {
  const abort = new AbortController();
  const res = await fetch(`${o.base}/north/v1/events/stream?${query}`, {
    headers: { 'x-apikey': o.adminKey, accept: 'text/event-stream' },
    signal: abort.signal,
  });
  if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        const now = Date.now();
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.includes('event: ready')) ready();
          const lines = block.split('\n');
          const data = lines.find((l) => l.startsWith('data: '));
          if (data && lines.some((l) => l.startsWith('id: '))) onEvent(JSON.parse(data.slice(6)), now);
        }
      }
    } catch {
      // closed
    }
  })();
  await isReady;
  return () => abort.abort();
}

export async function runEventsBench(o: EventsBenchOptions): Promise<EventsBenchResult> {
  const streamLatency: number[] = [];
  const hookLatency: number[] = [];
  const raisedSeen = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const now = Date.now();
      const e = JSON.parse(raw) as { type: string; at: number };
      if (e.type === 'alarm.raised') hookLatency.push(now - e.at);
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const closers: (() => void)[] = [];
  let fwdId: string | undefined;
  try {
    const tag = `evbench-${Date.now()}`;
    const meters: { id: string; key: string }[] = [];
    for (let i = 0; i < o.meters; i++) {
      const id = `${tag}-${i}`;
      const made = await call(o, 'POST', '/north/v1/devices', {
        id,
        type: 'electricity-meter',
        tags: [tag],
        attributes: { voltageHoldMs: 50 },
        transport: { sleepy: true },
      });
      meters.push({ id, key: made.apiKey as string });
    }
    const fwd = await call(o, 'POST', '/north/v1/forwarders', {
      name: 'events bench',
      destination: { kind: 'webhook', url, secret: 'bench-secret-0123456789' },
      subscription: { types: ['alarm.raised'] },
    });
    fwdId = fwd.id as string;
    // One stream of every `streams` records its arrivals; the others are open, filtered the same, and read.
    for (let s = 0; s < o.streams; s++) {
      const timed = s === 0;
      closers.push(
        await openStream(
          o,
          `types=alarm.raised&tag=${tag}`,
          (e: { type: string; at: number; deviceId: string }, at) => {
            if (!timed || e.type !== 'alarm.raised') return;
            streamLatency.push(at - e.at);
            raisedSeen.set(e.deviceId, (raisedSeen.get(e.deviceId) ?? 0) + 1);
          },
        ),
      );
    }
    o.say(`  ${o.streams} streams open; ${o.meters} meters raise and clear VOLTAGE ${o.rounds} times each`);
    let clock = Date.now();
    const send = (m: { id: string; key: string }, voltage: number) =>
      call(
        o,
        'POST',
        `/south/v80/devices/${m.id}/collect/iot`,
        { version: '1.0.0', datastreams: [{ id: 'voltage', datapoints: [{ value: voltage, at: ++clock }] }] },
        m.key,
      );
    await Promise.all(
      meters.map(async (m) => {
        for (let r = 0; r < o.rounds; r++) {
          await send(m, 260);
          const deadline = Date.now() + 30_000;
          while ((raisedSeen.get(m.id) ?? 0) <= r && Date.now() < deadline)
            await new Promise((res) => setTimeout(res, 20));
          await send(m, 230);
          await new Promise((res) => setTimeout(res, 300));
        }
      }),
    );
    const deadline = Date.now() + 30_000;
    while (hookLatency.length < streamLatency.length && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const result = {
      stream: { p50: pct(streamLatency, 50), p99: pct(streamLatency, 99), n: streamLatency.length },
      webhook: { p50: pct(hookLatency, 50), p99: pct(hookLatency, 99), n: hookLatency.length },
    };
    o.say(
      `  alarm raised -> stream:  p50 ${fmt(result.stream.p50)} ms, p99 ${fmt(result.stream.p99)} ms (${result.stream.n} raises)`,
    );
    o.say(
      `  alarm raised -> webhook: p50 ${fmt(result.webhook.p50)} ms, p99 ${fmt(result.webhook.p99)} ms (${result.webhook.n} raises)`,
    );
    return result;
  } finally {
    for (const close of closers) close();
    if (fwdId) await call(o, 'DELETE', `/north/v1/forwarders/${fwdId}`).catch(() => undefined);
    server.closeAllConnections();
    server.close();
  }
}
