// Jobs benchmark: one job over N emulated synchronous devices beside N single operations requested in a loop at
// the same concurrency, on the same devices in the same run; and the time from creating the job to the first
// device receiving its operation.
import { startDeviceEmulator } from '../emulator/device-emulator';

export interface JobsBenchOptions {
  readonly base: string;
  readonly adminKey: string;
  readonly say: (line: string) => void;
  readonly devices: number;
  /** Requests in flight at once: the loop's clients, and the job's maxInFlight. */
  readonly concurrency: number;
}

export interface JobsBenchResult {
  readonly devices: number;
  readonly loopRate: number;
  readonly loopErrors: number;
  readonly jobRate: number;
  readonly jobStatus: string;
  readonly firstStartMs: number;
  readonly jobSuccessful: number;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function call(
  method: string,
  url: string,
  key: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', 'x-apikey': key },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

export async function runJobsBench(o: JobsBenchOptions): Promise<JobsBenchResult> {
  const emulator = await startDeviceEmulator({ twinflowUrl: o.base, maxConcurrentRequests: 256 });
  try {
    const ids = Array.from({ length: o.devices }, (_, i) => `jobbench-${String(i).padStart(6, '0')}`);
    const t0 = performance.now();
    for (let start = 0; start < ids.length; start += 1_000) {
      const batch = ids.slice(start, start + 1_000);
      const res = await call('POST', `${o.base}/north/v1/devices/bulk`, o.adminKey, {
        devices: batch.map((id) => ({
          id,
          transport: { http: { operationUrl: emulator.operationUrl(id) } },
        })),
      });
      if (res.status !== 200) throw new Error(`provisioning: HTTP ${res.status}`);
      for (const [k, r] of (res.body.results as { status: number; apiKey?: string }[]).entries()) {
        if (r.status !== 201 || !r.apiKey) throw new Error(`provisioning ${batch[k]}: ${r.status}`);
        emulator.addDevice({ id: batch[k]!, apiKey: r.apiKey, behavior: { kind: 'sync' } });
      }
    }
    o.say(`  provisioned ${fmt(o.devices)} devices in ${fmt((performance.now() - t0) / 1000, 1)} s`);

    // N single operations in a loop, `concurrency` clients each waiting for its operation's end.
    let next = 0;
    let loopErrors = 0;
    const l0 = performance.now();
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        while (next < ids.length) {
          const id = ids[next++]!;
          const res = await call(
            'POST',
            `${o.base}/north/v1/devices/${id}/operations?waitMs=30000`,
            o.adminKey,
            {
              name: 'REBOOT_EQUIPMENT',
            },
          );
          if (res.status >= 300 || res.body?.status !== 'SUCCESSFUL') loopErrors++;
        }
      }),
    );
    const loopSeconds = (performance.now() - l0) / 1000;
    const loopRate = o.devices / loopSeconds;
    o.say(
      `  single operations: ${fmt(o.devices)} in ${fmt(loopSeconds, 1)} s, ${fmt(loopRate, 1)}/s at ${o.concurrency} clients (${loopErrors} not SUCCESSFUL)`,
    );

    // The same devices, one job.
    const received = emulator.stats().requests;
    const created = Date.now();
    const j0 = performance.now();
    const res = await call('POST', `${o.base}/north/v1/jobs`, o.adminKey, {
      operation: { name: 'REBOOT_EQUIPMENT' },
      target: { deviceIds: ids },
      rollout: { maxInFlight: o.concurrency },
      pollMs: 200,
    });
    if (res.status !== 202) throw new Error(`job create: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    let view: any;
    for (;;) {
      view = (await call('GET', `${o.base}/north/v1/jobs/${res.body.id}`, o.adminKey)).body;
      if (['COMPLETED', 'STOPPED', 'ABORTED', 'CANCELLED'].includes(view.status)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const jobSeconds = (performance.now() - j0) / 1000;
    const jobRate = o.devices / jobSeconds;
    const firsts = ids.map((id) => emulator.received(id).at(-1)?.receivedAt ?? Infinity);
    const firstStartMs = Math.min(...firsts) - created;
    o.say(
      `  one job:           ${fmt(o.devices)} in ${fmt(jobSeconds, 1)} s, ${fmt(jobRate, 1)}/s at maxInFlight ${o.concurrency} (${view.status}, ${fmt(view.counts?.SUCCESSFUL ?? 0)} successful, ${fmt(emulator.stats().requests - received)} pushes)`,
    );
    o.say(`  create to the first device's operation: ${fmt(firstStartMs)} ms`);
    return {
      devices: o.devices,
      loopRate,
      loopErrors,
      jobRate,
      jobStatus: view.status,
      firstStartMs,
      jobSuccessful: view.counts?.SUCCESSFUL ?? 0,
    };
  } finally {
    await emulator.close();
  }
}
