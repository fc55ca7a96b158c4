// The connector function sandbox: translation, limits, hostile sources, and the engine serving on afterwards.
import { FunctionEngine } from '../../../functions/engine';

const GOOD = `function transform(payload, context) {
  return [
    { id: 'temperature', value: payload.t, at: payload.ts },
    { id: 'device.name', value: context.deviceId },
  ];
}`;

const ctx = { deviceId: 'dev-1', deviceType: 'default', receivedAt: 1_700_000_000_000 };

describe('connector function engine', () => {
  let engine: FunctionEngine;

  beforeAll(async () => {
    engine = await FunctionEngine.create({ timeoutMs: 50 });
  });
  afterAll(() => engine.dispose());

  const load = (key: string, source: string) => {
    const result = engine.ensure(key, 1, source);
    expect(result).toEqual({ ok: true });
  };

  it('turns a JSON payload into a collect body, grouped by datastream', () => {
    load('org/good', GOOD);
    const out = engine.run('org/good', 1, { t: 21.5, ts: 1_700_000_000_001 }, ctx, 'production');
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    expect(out.body).toEqual({
      version: '1.0.0',
      datastreams: [
        { id: 'temperature', datapoints: [{ value: 21.5, at: 1_700_000_000_001 }] },
        { id: 'device.name', datapoints: [{ value: 'dev-1' }] },
      ],
    });
    expect(engine.statsOf('org/good')).toMatchObject({ calls: 1, failures: 0, lastErrors: [] });
  });

  it('parses CSV text and hex strings inside the sandbox', () => {
    load(
      'org/csv',
      `function transform(line) {
        const [t, h] = line.trim().split(',').map(Number);
        return [{ id: 'temperature', value: t }, { id: 'humidity', value: h }];
      }`,
    );
    load(
      'org/hex',
      `function transform(hex) {
        const raw = parseInt(hex.slice(0, 4), 16);
        return [{ id: 'temperature', value: (raw > 0x7fff ? raw - 0x10000 : raw) / 10 }, { id: 'battery', value: parseInt(hex.slice(4, 6), 16) }];
      }`,
    );
    const csv = engine.run('org/csv', 1, '21.5,40\n', ctx, 'production');
    const hex = engine.run('org/hex', 1, 'ff9c5a', ctx, 'production');
    expect(csv.ok && csv.datapoints).toEqual([
      { id: 'temperature', value: 21.5 },
      { id: 'humidity', value: 40 },
    ]);
    expect(hex.ok && hex.datapoints).toEqual([
      { id: 'temperature', value: -10 },
      { id: 'battery', value: 90 },
    ]);
  });

  it('answers a syntax error with its message, and refuses a source without transform', () => {
    const bad = engine.check('function transform(p) { return [ }');
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/SyntaxError/);
    const none = engine.check('function translate(p) { return []; }');
    expect(!none.ok && none.error).toMatch(/must define function transform/);
  });

  it('refuses output that is not a list of datapoints, and counts it as a failure', () => {
    load(
      'org/shape',
      'function transform(p) { return p.mode === 1 ? { temperature: 1 } : [{ id: "", value: 1 }]; }',
    );
    const a = engine.run('org/shape', 1, { mode: 1 }, ctx, 'production');
    const b = engine.run('org/shape', 1, { mode: 2 }, ctx, 'production');
    expect(a.ok || a.error).toMatch(/must return \[\{ id, value/);
    expect(b.ok || b.error).toMatch(/0\.id/);
    expect(engine.statsOf('org/shape')).toMatchObject({ calls: 2, failures: 2 });
  });

  it('caps the number of datapoints a call may return', () => {
    load(
      'org/many',
      'function transform() { const out = []; for (let i = 0; i < 6000; i++) out.push({ id: "x", value: i }); return out; }',
    );
    const out = engine.run('org/many', 1, null, ctx, 'production');
    expect(out.ok || out.error).toMatch(/at most 5000 datapoints/);
  });

  it('keeps the last ten errors of a function with their time and message', () => {
    load('org/thrower', 'let n = 0; function transform() { n++; throw new Error("bad payload " + n); }');
    for (let i = 0; i < 12; i++) engine.run('org/thrower', 1, null, ctx, 'production');
    const stats = engine.statsOf('org/thrower');
    expect(stats.calls).toBe(12);
    expect(stats.failures).toBe(12);
    expect(stats.lastErrors).toHaveLength(10);
    expect(stats.lastErrors[9]).toMatchObject({ kind: 'thrown', message: 'Error: bad payload 12' });
    expect(typeof stats.lastErrors[0]?.at).toBe('number');
  });

  it('does not count samples run from the test endpoint', () => {
    load('org/sample', GOOD);
    engine.run('org/sample', 1, { t: 1 }, ctx, 'sample');
    expect(engine.statsOf('org/sample').calls).toBe(0);
  });

  it('keeps what a TEST-mode function would have produced', () => {
    load('org/shadow', GOOD);
    engine.run('org/shadow', 1, { t: 3 }, ctx, 'shadow');
    expect(engine.statsOf('org/shadow').testResults).toEqual([
      expect.objectContaining({
        ok: true,
        deviceId: 'dev-1',
        datapoints: [
          { id: 'temperature', value: 3 },
          { id: 'device.name', value: 'dev-1' },
        ],
      }),
    ]);
  });

  describe('hostile functions', () => {
    const HOSTILE: Record<string, { source: string; error: RegExp; kind: string }> = {
      'an endless loop': {
        source: 'function transform() { while (true) {} }',
        error: /CPU deadline/,
        kind: 'timeout',
      },
      'a memory bomb (growing array)': {
        source: 'function transform() { const a = []; for (;;) a.push(new Array(100000).fill(1)); }',
        error: /out of memory|CPU deadline/,
        kind: 'memory|timeout',
      },
      'a memory bomb (doubling string)': {
        source: 'function transform() { let s = "x"; for (;;) s += s; }',
        error: /out of memory/,
        kind: 'memory',
      },
      'a memory bomb (one huge allocation)': {
        source: 'function transform() { return [{ id: "x", value: "y".repeat(64 * 1024 * 1024) }]; }',
        error: /out of memory/,
        kind: 'memory',
      },
      'deep recursion': {
        source: 'function transform() { const f = (n) => f(n + 1) + 1; return f(0); }',
        error: /recursed too deeply/,
        kind: 'stack',
      },
      'reaching require': {
        source: 'function transform() { return require("fs").readFileSync("/etc/passwd", "utf8"); }',
        error: /ReferenceError: 'require' is not defined/,
        kind: 'thrown',
      },
      'reaching process': {
        source: 'function transform() { process.exit(1); }',
        error: /ReferenceError: 'process' is not defined/,
        kind: 'thrown',
      },
      'reaching fetch': {
        source: 'function transform() { fetch("http://127.0.0.1:1/"); return []; }',
        error: /ReferenceError: 'fetch' is not defined/,
        kind: 'thrown',
      },
      timers: {
        source: 'function transform() { setTimeout(() => {}, 1); return []; }',
        error: /ReferenceError: 'setTimeout' is not defined/,
        kind: 'thrown',
      },
      'the std and os modules': {
        source:
          'function transform() { return [{ id: "x", value: typeof std + typeof os + typeof console }], os.exec(["id"]); }',
        error: /ReferenceError: 'os' is not defined/,
        kind: 'thrown',
      },
      'the constructor escape': {
        source:
          'function transform() { return this.constructor.constructor("return process")().mainModule; }',
        error: /'process' is not defined|TypeError/,
        kind: 'thrown',
      },
      'a dynamic import': {
        source: 'function transform() { return import("fs"); }',
        error: /must return \[/,
        kind: 'output',
      },
      'a thrown object whose name is an object and whose message throws': {
        source:
          'function transform() { throw { get name() { return { deep: [1, 2] }; }, get message() { throw new Error("no"); } }; }',
        error: /.+/,
        kind: 'thrown',
      },
      'a throw of a getter that loops': {
        source: 'function transform() { throw { get message() { for (;;) {} } }; }',
        error: /.+/,
        kind: 'thrown|timeout',
      },
    };

    it.each(Object.entries(HOSTILE))('contains %s, reports it, and serves others afterwards', (name, h) => {
      const key = `org/hostile-${name}`;
      load(key, h.source);
      const started = Date.now();
      const out = engine.run(key, 1, { t: 1 }, ctx, 'production');
      const elapsed = Date.now() - started;
      expect(out.ok).toBe(false);
      if (out.ok) return;
      expect(out.error).toMatch(h.error);
      expect(out.kind).toMatch(new RegExp(`^(${h.kind})$`));
      // The deadline is 50 ms; a memory bomb ends when the heap ceiling is reached. Generous slack for a loaded machine.
      expect(elapsed).toBeLessThan(5_000);
      const stats = engine.statsOf(key);
      expect(stats).toMatchObject({ calls: 1, failures: 1 });
      expect(stats.lastErrors[0]?.message).toBe(out.error);
      // The same function's runtime is rebuilt and fails the same way again; the others are unharmed.
      const again = engine.run(key, 1, { t: 1 }, ctx, 'production');
      expect(again.ok).toBe(false);
      load('org/after', GOOD);
      const good = engine.run('org/after', 1, { t: 7 }, ctx, 'production');
      expect(good.ok && good.datapoints[0]).toEqual({ id: 'temperature', value: 7 });
    });

    it('refuses a source whose top level never ends, within the deadline', () => {
      const started = Date.now();
      const result = engine.check('while (true) {} function transform() { return []; }');
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(!result.ok && result.error).toMatch(/CPU deadline/);
    });

    it('keeps prototype pollution inside the function, away from the host and other functions', () => {
      load(
        'org/polluter',
        `Object.prototype.polluted = 'yes'; Array.prototype.push = null; JSON.parse = () => ({ hijacked: true });
         globalThis.shared = 'leak';
         function transform(p) { return [{ id: 'seen', value: p.t }]; }`,
      );
      const out = engine.run('org/polluter', 1, { t: 5 }, ctx, 'production');
      expect(out.ok && out.datapoints).toEqual([{ id: 'seen', value: 5 }]);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((globalThis as Record<string, unknown>).shared).toBeUndefined();
      load(
        'org/neighbour',
        'function transform() { return [{ id: "p", value: String(({}).polluted) + typeof shared }]; }',
      );
      const other = engine.run('org/neighbour', 1, null, ctx, 'production');
      expect(other.ok && other.datapoints).toEqual([{ id: 'p', value: 'undefinedundefined' }]);
    });

    it('still serves a good function after every hostile one, and the cold path works too', () => {
      load('org/final', GOOD);
      for (let i = 0; i < 100; i++) {
        const out = engine.run('org/final', 1, { t: i }, ctx, 'production');
        expect(out.ok).toBe(true);
      }
      const cold = engine.runOnce(GOOD, { t: 9 }, ctx);
      expect(cold.ok && cold.datapoints[0]).toEqual({ id: 'temperature', value: 9 });
    });
  });
});
