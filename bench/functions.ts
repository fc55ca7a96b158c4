// Connector function figures: calls per second of a small JSON-to-datastreams function on a reused QuickJS
// context (compile once, call many) beside the cold path (a new runtime and context per call).
import { FunctionEngine } from '../functions/engine';

export interface FunctionsBenchOptions {
  readonly say: (line: string) => void;
  /** How long each path runs (ms). */
  readonly durationMs?: number;
}

export interface FunctionsBenchResult {
  readonly warmCallsPerSecond: number;
  readonly coldCallsPerSecond: number;
  readonly warmP50Us: number;
  readonly warmP99Us: number;
}

const SOURCE = `function transform(payload, context) {
  return [
    { id: 'temperature', value: payload.readings.tC, at: payload.ts },
    { id: 'humidity', value: payload.readings.rh, at: payload.ts },
    { id: 'device.serialNumber', value: payload.serial },
  ];
}`;

const payloadAt = (i: number) => ({
  serial: 'SN-0001',
  readings: { tC: 20 + (i % 10) / 10, rh: 40 + (i % 7) },
  ts: 1_700_000_000_000 + i,
});
const context = { deviceId: 'bench-1', deviceType: 'generic', channel: 'http', path: 'acme', receivedAt: 0 };

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export async function runFunctionsBench(o: FunctionsBenchOptions): Promise<FunctionsBenchResult> {
  const durationMs = o.durationMs ?? 3_000;
  const engine = await FunctionEngine.create();
  try {
    const loaded = engine.ensure('bench/acme', 1, SOURCE);
    if (!loaded.ok) throw new Error(`the bench function does not compile: ${loaded.error}`);
    // Warm up the WebAssembly code and the context before measuring.
    for (let i = 0; i < 2_000; i++) engine.run('bench/acme', 1, payloadAt(i), context, 'production');

    const samples: number[] = [];
    let warm = 0;
    let started = performance.now();
    while (performance.now() - started < durationMs) {
      const t = performance.now();
      const out = engine.run('bench/acme', 1, payloadAt(warm), context, 'production');
      samples.push(performance.now() - t);
      if (!out.ok) throw new Error(`the bench function failed: ${out.error}`);
      warm += 1;
    }
    const warmSeconds = (performance.now() - started) / 1000;

    let cold = 0;
    started = performance.now();
    while (performance.now() - started < durationMs) {
      const out = engine.runOnce(SOURCE, payloadAt(cold), context);
      if (!out.ok) throw new Error(`the bench function failed cold: ${out.error}`);
      cold += 1;
    }
    const coldSeconds = (performance.now() - started) / 1000;

    samples.sort((a, b) => a - b);
    const q = (p: number) =>
      (samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? NaN) * 1000;
    const result: FunctionsBenchResult = {
      warmCallsPerSecond: warm / warmSeconds,
      coldCallsPerSecond: cold / coldSeconds,
      warmP50Us: q(0.5),
      warmP99Us: q(0.99),
    };
    o.say(
      `  reused context   ${fmt(result.warmCallsPerSecond).padStart(8)} calls/s  (p50 ${fmt(result.warmP50Us, 1)} µs, p99 ${fmt(result.warmP99Us, 1)} µs; ${fmt(warm)} calls, output validated)`,
    );
    o.say(
      `  new runtime/call ${fmt(result.coldCallsPerSecond).padStart(8)} calls/s  (${fmt(cold)} calls: compile, call, dispose)`,
    );
    o.say(`  reuse is ${fmt(result.warmCallsPerSecond / result.coldCallsPerSecond, 1)}x the cold path`);
    return result;
  } finally {
    engine.dispose();
  }
}

if (require.main === module) {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say('Connector functions: a JSON-to-datastreams function in QuickJS');
  runFunctionsBench({ say }).catch((err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  });
}
