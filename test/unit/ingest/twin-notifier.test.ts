// Covers TwinNotifier: coalescing per device, significance and delays, rate limit, retries, flush and concurrency.
import { type TwinNotifierOptions, TwinGoneError, TwinNotifier } from '../../../ingest/twin-notifier';
import type { TelemetryBatch } from '../../../twins/twin-core';
import type { Datapoint } from '../../../twins/types';

/** A clock and timer queue the test moves by hand. */
class ManualScheduler {
  time = 0;
  private seq = 0;
  private timers: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];

  readonly now = (): number => this.time;

  readonly setTimer = (fn: () => void, ms: number): { cancel(): void } => {
    const timer = { at: this.time + ms, seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  };

  /** Moves the clock to `target`, firing due timers in time order (timers set while firing included). */
  async advanceTo(target: number): Promise<void> {
    for (;;) {
      const due = this.timers
        .filter((t) => !t.cancelled && t.at <= target)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.fn();
      await settle();
    }
    this.time = Math.max(this.time, target);
    await settle();
  }

  advanceBy(ms: number): Promise<void> {
    return this.advanceTo(this.time + ms);
  }
}

/** Lets promise continuations (the notifier's `await signal(...)`) run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface SignalCall {
  readonly org: string;
  readonly deviceId: string;
  readonly batch: TelemetryBatch;
  readonly at: number;
  succeed(): Promise<void>;
  fail(err: unknown): Promise<void>;
}

const OPTIONS: TwinNotifierOptions = { minIntervalMs: 1_000, maxInFlight: 8, retryDelayMs: 2_000 };

function setup(options: Partial<TwinNotifierOptions> = {}, pressure?: { on: boolean }) {
  const clock = new ManualScheduler();
  const calls: SignalCall[] = [];
  const errors: { deviceId: string; err: unknown }[] = [];
  const notifier = new TwinNotifier(
    {
      signal: (org, deviceId, batch) =>
        new Promise<void>((resolve, reject) => {
          calls.push({
            org,
            deviceId,
            batch,
            at: clock.time,
            succeed: async () => {
              resolve();
              await settle();
            },
            fail: async (err) => {
              reject(err);
              await settle();
            },
          });
        }),
      now: clock.now,
      setTimer: clock.setTimer,
      onError: (_org, deviceId, err) => errors.push({ deviceId, err }),
      ...(pressure ? { underPressure: () => pressure.on } : {}),
    },
    { ...OPTIONS, ...options },
  );
  /** Reports datapoints of a generic device (or another type) received now. */
  const report = (deviceId: string, datapoints: Datapoint[], twinType = 'generic') =>
    notifier.report('acme', deviceId, twinType, datapoints, 'http', clock.time);
  return { clock, calls, errors, notifier, report };
}

const dp = (datastreamId: string, value: unknown, at: number): Datapoint => ({
  datastreamId,
  feed: 'default',
  value,
  at,
});
const values = (call: SignalCall | undefined) =>
  Object.fromEntries((call?.batch.datapoints ?? []).map((d) => [d.datastreamId, d.value]));

/** Sends a first report for the device and lets its signal succeed, so later data is judged against it. */
async function primed(deviceId: string, env: ReturnType<typeof setup>, ...datastreams: string[]) {
  env.report(
    deviceId,
    datastreams.map((id) => dp(id, 0, env.clock.time)),
  );
  await env.calls.at(-1)?.succeed();
}

describe('TwinNotifier', () => {
  it('sends the first report of a device at once', () => {
    const { calls, report } = setup();
    report('dev-1', [dp('temperature', 21, 0)]);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ org: 'acme', deviceId: 'dev-1', at: 0 });
    expect(calls[0]?.batch).toMatchObject({
      channel: 'http',
      receivedAt: 0,
      storedCount: 1,
      datapoints: [dp('temperature', 21, 0)],
    });
  });

  it('ignores a report with no datapoints', () => {
    const { calls, notifier, report } = setup();
    report('dev-1', []);
    expect(calls).toHaveLength(0);
    expect(notifier.stats().reports).toBe(0);
  });

  it('coalesces many reports within the window into one signal with the newest value per datastream and the summed storedCount', async () => {
    const env = setup();
    const { clock, calls, report } = env;
    await primed('dev-1', env, 'temperature', 'humidity');

    await clock.advanceTo(100);
    report('dev-1', [dp('temperature', 20, 100), dp('temperature', 21, 110)]);
    await clock.advanceTo(200);
    report('dev-1', [dp('humidity', 40, 200)]);
    await clock.advanceTo(300);
    report('dev-1', [dp('temperature', 22, 300)]);
    await clock.advanceTo(400);
    report('dev-1', [dp('temperature', 19, 50)]); // measured earlier than what is queued: stored, but not the newest
    expect(calls).toHaveLength(1);

    await clock.advanceTo(5_100);
    expect(calls).toHaveLength(2);
    const batch = calls[1]?.batch;
    expect(batch?.datapoints).toHaveLength(2);
    expect(values(calls[1])).toEqual({ temperature: 22, humidity: 40 });
    expect(batch?.storedCount).toBe(5);
    expect(batch?.receivedAt).toBe(400);
    expect(batch?.batchId).not.toBe(calls[0]?.batch.batchId);
  });

  it('holds a non-significant datapoint for the generic maxSignalDelayMs of 5000 ms', async () => {
    const env = setup();
    const { clock, calls, report } = env;
    await primed('dev-1', env, 'temperature');

    await clock.advanceTo(2_000);
    report('dev-1', [dp('temperature', 22, 2_000)]);
    await clock.advanceTo(6_999);
    expect(calls).toHaveLength(1);
    await clock.advanceTo(7_000);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.at).toBe(7_000);
  });

  it('holds a repeat of what the twin already has until the heartbeat of 60000 ms', async () => {
    const env = setup();
    const { clock, calls, report } = env;
    await primed('dev-1', env, 'temperature'); // the twin has temperature 0
    for (let t = 1_000; t <= 59_000; t += 1_000) {
      await clock.advanceTo(t);
      report('dev-1', [dp('temperature', 0, t)]);
    }
    expect(calls).toHaveLength(1);
    await clock.advanceTo(61_000);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.at).toBe(61_000);
    expect(calls[1]?.batch.storedCount).toBe(59);
    expect(calls[1]?.batch.datapoints).toEqual([dp('temperature', 0, 59_000)]);
  });

  it('sends repeats within maxSignalDelayMs once a changed value joins them, objects compared by value', async () => {
    const env = setup();
    const { clock, calls, report } = env;
    env.report('dev-1', [dp('position', { lat: 1, lon: 2 }, 0), dp('temperature', 0, 0)]);
    await calls[0]?.succeed();
    await clock.advanceTo(1_000);
    report('dev-1', [dp('position', { lat: 1, lon: 2 }, 1_000)]); // same object value: a repeat
    await clock.advanceTo(10_000);
    expect(calls).toHaveLength(1);
    report('dev-1', [dp('temperature', 1, 10_000)]); // a change: due within 5000 ms
    await clock.advanceTo(15_000);
    expect(calls).toHaveLength(2);
    expect(values(calls[1])).toEqual({ position: { lat: 1, lon: 2 }, temperature: 1 });
  });

  it('keeps its signal rate flat when repeats come twice as often', async () => {
    const countSignals = async (periodMs: number) => {
      const env = setup();
      const ids = Array.from({ length: 20 }, (_, i) => `dev-${i}`);
      for (const id of ids) await primed(id, env, 'temperature');
      const sent = env.calls.length;
      let answered = sent;
      for (let t = periodMs; t <= 600_000; t += periodMs) {
        await env.clock.advanceTo(t);
        for (const id of ids) env.report(id, [dp('temperature', 0, t)]);
        // Answer only the signals sent since the last step (answering all again made the test quadratic).
        while (answered < env.calls.length) await env.calls[answered++]!.succeed();
      }
      return env.calls.length - sent;
    };
    const slow = await countSignals(2_000);
    const fast = await countSignals(1_000);
    // One per device per heartbeat: the first repeat is due 60 s after it came, then every 60 s up to 600 s.
    expect(slow).toBe(20 * 9);
    expect(fast).toBe(slow);
  });

  it('holds a non-significant meter datapoint for the meter maxSignalDelayMs of 10000 ms', async () => {
    const env = setup();
    const { clock, calls, report } = env;
    report('meter-1', [dp('power.active', 500, 0)], 'electricity-meter');
    await calls[0]?.succeed();

    await clock.advanceTo(2_000);
    report('meter-1', [dp('power.active', 600, 2_000)], 'electricity-meter');
    await clock.advanceTo(11_999);
    expect(calls).toHaveLength(1);
    await clock.advanceTo(12_000);
    expect(calls).toHaveLength(2);
  });

  it('sends a significant datapoint as soon as the rate limit allows, and a later non-significant one rides along', async () => {
    const env = setup();
    const { clock, calls, report } = env;
    report('meter-1', [dp('voltage', 230, 0), dp('power.active', 500, 0)], 'electricity-meter');
    await calls[0]?.succeed();

    await clock.advanceTo(3_000);
    report('meter-1', [dp('power.active', 700, 3_000)], 'electricity-meter');
    await clock.advanceTo(3_500);
    report('meter-1', [dp('voltage', 150, 3_500)], 'electricity-meter'); // leaves the tolerance band
    expect(calls).toHaveLength(2);
    expect(values(calls[1])).toEqual({ 'power.active': 700, voltage: 150 });
  });

  it('sends at most one signal per device per minIntervalMs, however significant the data', async () => {
    const env = setup();
    const { clock, calls, report } = env;
    await primed('dev-1', env, 'temperature');

    await clock.advanceTo(10);
    report('dev-1', [dp('humidity', 40, 10)]); // a new datastream: significant
    await clock.advanceTo(999);
    expect(calls).toHaveLength(1);
    await clock.advanceTo(1_000);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.at).toBe(1_000);
    await calls[1]?.succeed();

    report('dev-1', [dp('pressure', 1013, 1_000)]);
    await clock.advanceTo(1_999);
    expect(calls).toHaveLength(2);
    await clock.advanceTo(2_000);
    expect(calls).toHaveLength(3);
  });

  it('rate-limits each device on its own, so one device does not hold back another', async () => {
    const env = setup();
    const { calls, report } = env;
    await primed('dev-1', env, 'temperature');
    report('dev-1', [dp('humidity', 1, 0)]);
    report('dev-2', [dp('humidity', 1, 0)]);
    expect(calls.map((c) => c.deviceId)).toEqual(['dev-1', 'dev-2']);
  });

  it('retries a signal that failed with a plain Error after retryDelayMs, keeping its data', async () => {
    const { clock, calls, errors, notifier, report } = setup();
    report('dev-1', [dp('temperature', 21, 0), dp('humidity', 40, 0)]);
    const failure = new Error('Temporal unavailable');
    await calls[0]?.fail(failure);
    expect(errors).toEqual([{ deviceId: 'dev-1', err: failure }]);
    expect(notifier.stats()).toMatchObject({ signalsFailed: 1, signalsSent: 0, devicesPending: 1 });

    await clock.advanceTo(1_999);
    expect(calls).toHaveLength(1);
    await clock.advanceTo(2_000);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.batch.datapoints).toEqual(calls[0]?.batch.datapoints);
    expect(calls[1]?.batch.storedCount).toBe(2);

    await calls[1]?.succeed();
    expect(notifier.stats()).toMatchObject({ signalsFailed: 1, signalsSent: 1, devicesPending: 0 });
  });

  it('lets newer data that arrived during a failed signal win over the failed batch on retry', async () => {
    const { clock, calls, report } = setup();
    report('dev-1', [dp('temperature', 21, 0), dp('humidity', 40, 0)]);
    await clock.advanceTo(300);
    report('dev-1', [dp('temperature', 25, 300)]);
    await calls[0]?.fail(new Error('deadline exceeded'));

    await clock.advanceTo(2_299);
    expect(calls).toHaveLength(1);
    await clock.advanceTo(2_300);
    expect(calls).toHaveLength(2);
    expect(values(calls[1])).toEqual({ temperature: 25, humidity: 40 });
    expect(calls[1]?.batch.storedCount).toBe(3);
  });

  it('does not retry a signal that failed with TwinGoneError and forgets the device', async () => {
    const { clock, calls, errors, notifier, report } = setup();
    report('dev-1', [dp('temperature', 21, 0)]);
    await calls[0]?.fail(new TwinGoneError('workflow completed'));
    expect(errors).toHaveLength(1);
    expect(notifier.stats()).toMatchObject({ signalsFailed: 1, devicesPending: 0 });

    await clock.advanceTo(60_000);
    expect(calls).toHaveLength(1);

    // A later report starts afresh: the device counts as new again, so it is sent at once.
    report('dev-1', [dp('temperature', 22, 60_000)]);
    expect(calls).toHaveLength(2);
    expect(values(calls[1])).toEqual({ temperature: 22 });
  });

  it('sends data reported while a signal is in flight once that signal is done', async () => {
    const { clock, calls, report } = setup();
    report('dev-1', [dp('temperature', 21, 0)]);
    await clock.advanceTo(100);
    report('dev-1', [dp('temperature', 22, 100), dp('humidity', 40, 100)]);

    await clock.advanceTo(8_000);
    expect(calls).toHaveLength(1); // still in flight: one signal per device at a time

    await calls[0]?.succeed();
    expect(calls).toHaveLength(2);
    expect(values(calls[1])).toEqual({ temperature: 22, humidity: 40 });
    expect(calls[1]?.batch.storedCount).toBe(2);
  });

  it('waits for minIntervalMs after the start of the previous signal before sending data that arrived during it', async () => {
    const { clock, calls, report } = setup();
    report('dev-1', [dp('temperature', 21, 0)]);
    await clock.advanceTo(100);
    report('dev-1', [dp('humidity', 40, 100)]);
    await calls[0]?.succeed();
    expect(calls).toHaveLength(1);
    await clock.advanceTo(1_000);
    expect(calls).toHaveLength(2);
    expect(values(calls[1])).toEqual({ humidity: 40 });
  });

  it('flush() sends everything pending at once and resolves when the signals are done', async () => {
    const env = setup();
    const { calls, notifier, report } = env;
    await primed('dev-1', env, 'temperature');
    await primed('dev-2', env, 'temperature');
    report('dev-1', [dp('temperature', 1, 0)]);
    report('dev-2', [dp('temperature', 2, 0)]);
    expect(calls).toHaveLength(2);

    let flushed = false;
    const flushing = notifier.flush().then(() => void (flushed = true));
    expect(
      calls
        .slice(2)
        .map((c) => c.deviceId)
        .sort(),
    ).toEqual(['dev-1', 'dev-2']);
    await calls[2]?.succeed();
    expect(flushed).toBe(false);
    await calls[3]?.succeed();
    await flushing;
    expect(flushed).toBe(true);
    expect(notifier.stats().devicesPending).toBe(0);
  });

  it('flush() resolves at once when nothing is pending', async () => {
    const { calls, notifier } = setup();
    await notifier.flush();
    expect(calls).toHaveLength(0);
  });

  it('flush() retries a signal it sent that failed, in its next round', async () => {
    const env = setup();
    const { calls, notifier, report } = env;
    await primed('dev-1', env, 'temperature');
    report('dev-1', [dp('temperature', 21, 0)]);
    const flushing = notifier.flush();
    expect(calls).toHaveLength(2);
    await calls[1]?.fail(new Error('transient'));
    expect(calls).toHaveLength(3);
    expect(values(calls[2])).toEqual({ temperature: 21 });
    await calls[2]?.succeed();
    await flushing;
    expect(notifier.stats().devicesPending).toBe(0);
  });

  // Regression: flush() once returned while data from during an in-flight signal still waited on a timer.
  it('flush() also sends data that arrived while the device signal was in flight', async () => {
    const { calls, notifier, report } = setup();
    report('dev-1', [dp('temperature', 21, 0)]);
    report('dev-1', [dp('temperature', 22, 0)]);
    const flushing = notifier.flush();
    await calls[0]?.succeed();
    expect(calls).toHaveLength(2);
    await calls[1]?.succeed();
    await flushing;
    expect(notifier.stats().devicesPending).toBe(0);
  });

  it('keeps at most maxInFlight signals in flight and starts the next as one finishes', async () => {
    const { calls, report } = setup({ maxInFlight: 2 });
    for (const id of ['dev-1', 'dev-2', 'dev-3', 'dev-4']) report(id, [dp('temperature', 1, 0)]);
    expect(calls.map((c) => c.deviceId)).toEqual(['dev-1', 'dev-2']);

    await calls[1]?.succeed();
    expect(calls.map((c) => c.deviceId)).toEqual(['dev-1', 'dev-2', 'dev-3']);
    await calls[0]?.fail(new Error('transient'));
    expect(calls.map((c) => c.deviceId)).toEqual(['dev-1', 'dev-2', 'dev-3', 'dev-4']);
  });

  it('counts reports, signals sent and failed, and devices with pending data', async () => {
    const { calls, notifier, report } = setup();
    report('dev-1', [dp('a', 1, 0)]);
    report('dev-2', [dp('a', 1, 0)]);
    report('dev-1', [dp('b', 1, 0)]); // dev-1 is in flight: this waits
    expect(notifier.stats()).toEqual({ reports: 3, signalsSent: 0, signalsFailed: 0, devicesPending: 1 });
    await calls[0]?.succeed();
    await calls[1]?.fail(new TwinGoneError('gone'));
    expect(notifier.stats()).toEqual({ reports: 3, signalsSent: 1, signalsFailed: 1, devicesPending: 1 });
  });

  it('after close() ignores new reports and sends nothing more', async () => {
    const env = setup();
    const { clock, calls, notifier, report } = env;
    await primed('dev-1', env, 'temperature');
    await notifier.close();
    report('dev-1', [dp('humidity', 1, 0)]);
    await clock.advanceTo(60_000);
    expect(calls).toHaveLength(1);
    expect(notifier.stats().reports).toBe(1);
  });

  // Regression: after TwinGoneError, data from during that signal was once rescheduled, even after close().
  it('sends nothing after close(), even for data that arrived during a signal that found the twin gone', async () => {
    const { clock, calls, notifier, report } = setup();
    report('dev-1', [dp('temperature', 21, 0)]);
    report('dev-1', [dp('humidity', 40, 0)]);
    await calls[0]?.fail(new TwinGoneError('workflow completed'));
    await notifier.close();
    await clock.advanceTo(60_000);
    expect(calls).toHaveLength(1);
  });

  describe('with a signal budget (maxSignalsPerSecond)', () => {
    const succeedAll = async (calls: SignalCall[]) => {
      for (const call of calls) await call.succeed();
    };

    it('sends at most the budget per second across devices, and the rest as it refills', async () => {
      const { clock, calls, report } = setup({ maxSignalsPerSecond: 10, maxInFlight: 1_000 });
      for (let i = 0; i < 35; i++) report(`dev-${i}`, [dp('t', i, 0)]);
      expect(calls).toHaveLength(10); // one second's worth at once
      await succeedAll(calls);
      await clock.advanceTo(1_000);
      expect(calls).toHaveLength(20);
      await succeedAll(calls);
      await clock.advanceTo(2_500);
      expect(calls).toHaveLength(35);
      expect(new Set(calls.map((c) => c.deviceId)).size).toBe(35);
    });

    it('sends significant data before due routine data when the budget is short', async () => {
      const env = setup({ maxSignalsPerSecond: 2, maxInFlight: 1_000 });
      const { clock, calls, report } = env;
      for (const id of ['a', 'b', 'c', 'd']) {
        report(id, [dp('t', 0, 0)]);
        await clock.advanceBy(1_000);
        await calls.at(-1)?.succeed();
      }
      expect(calls).toHaveLength(4);
      await clock.advanceTo(10_000); // budget full again (2)
      for (const id of ['a', 'b', 'c', 'd']) report(id, [dp('t', 1, 10_000)]); // changes: due at 15,000
      await clock.advanceTo(15_000);
      expect(calls.slice(4).map((c) => c.deviceId)).toEqual(['a', 'b']); // c and d wait for the budget
      await succeedAll(calls);
      report('new-device', [dp('t', 0, 15_000)]); // a device's first data is significant
      await clock.advanceTo(15_500);
      expect(calls.slice(6).map((c) => c.deviceId)).toEqual(['new-device']);
      await succeedAll(calls);
      await clock.advanceTo(16_500);
      expect(calls.slice(7).map((c) => c.deviceId)).toEqual(['c', 'd']);
    });

    it('moves a device waiting among routine signals ahead when significant data comes', async () => {
      const env = setup({ maxSignalsPerSecond: 1, maxInFlight: 1_000 });
      const { clock, calls, report } = env;
      for (const id of ['a', 'b', 'c']) {
        report(id, [dp('voltage', 230, clock.time)], 'electricity-meter');
        await clock.advanceBy(1_000);
        await calls.at(-1)?.succeed();
      }
      await clock.advanceTo(20_000); // one token
      for (const id of ['a', 'b', 'c']) report(id, [dp('voltage', 231, 20_000)], 'electricity-meter'); // routine
      await clock.advanceTo(30_000); // all three due (10 s); a goes, b and c wait for the budget
      expect(calls.slice(3).map((c) => c.deviceId)).toEqual(['a']);
      await calls.at(-1)?.succeed();
      report('c', [dp('voltage', 150, 30_000)], 'electricity-meter'); // leaves the band: significant
      await clock.advanceTo(31_000);
      await clock.advanceTo(32_000);
      expect(calls.slice(4).map((c) => c.deviceId)).toEqual(['c', 'b']);
      expect(values(calls[4])).toEqual({ voltage: 150 });
    });

    it('keeps coalescing while a device waits for the budget, so its twin gets it all in one signal', async () => {
      const { clock, calls, report } = setup({ maxSignalsPerSecond: 1, maxInFlight: 1_000 });
      report('a', [dp('t', 0, 0)]);
      report('b', [dp('t', 0, 0)]);
      expect(calls.map((c) => c.deviceId)).toEqual(['a']);
      report('b', [dp('u', 5, 10)]);
      await calls[0]?.succeed();
      await clock.advanceTo(1_000);
      expect(calls.map((c) => c.deviceId)).toEqual(['a', 'b']);
      expect(values(calls[1])).toEqual({ t: 0, u: 5 });
      expect(calls[1]?.batch.storedCount).toBe(2);
    });

    it('under ingest pressure sends its share of the budget, significant signals first', async () => {
      const pressure = { on: false };
      const env = setup({ maxSignalsPerSecond: 100, shareUnderPressure: 0.1, maxInFlight: 1_000 }, pressure);
      const { clock, calls, report } = env;
      for (let i = 0; i < 30; i++) report(`dev-${i}`, [dp('t', 0, 0)]); // first data: significant, all at once
      expect(calls).toHaveLength(30);
      await succeedAll(calls);
      await clock.advanceTo(10_000);
      pressure.on = true;
      for (let i = 0; i < 30; i++) report(`dev-${i}`, [dp('t', 1, 10_000)]); // changes: routine, due at 15,000
      await clock.advanceTo(15_000);
      expect(calls).toHaveLength(40); // a second's worth of the share (10), not of the budget (100)
      await succeedAll(calls);
      report('new-device', [dp('t', 0, 15_000)]); // significant: ahead of the routine ones still waiting
      await clock.advanceTo(15_100);
      expect(calls.slice(40).map((c) => c.deviceId)).toEqual(['new-device']);
      await succeedAll(calls);
      await clock.advanceTo(16_000);
      expect(calls).toHaveLength(50); // ten in the second, the new device among them
      await succeedAll(calls);
      pressure.on = false; // the ingest caught up: the whole budget again
      await clock.advanceTo(16_200);
      expect(calls).toHaveLength(61);
      expect(new Set(calls.slice(30).map((c) => c.deviceId)).size).toBe(31);
    });

    it('without a pressure share, ingest pressure changes nothing', async () => {
      const pressure = { on: true };
      const { calls, report } = setup({ maxSignalsPerSecond: 10, maxInFlight: 1_000 }, pressure);
      for (let i = 0; i < 35; i++) report(`dev-${i}`, [dp('t', i, 0)]);
      expect(calls).toHaveLength(10);
    });

    it('flush() sends everything pending at once, whatever the budget', async () => {
      const { calls, notifier, report } = setup({ maxSignalsPerSecond: 1, maxInFlight: 1_000 });
      for (let i = 0; i < 5; i++) report(`dev-${i}`, [dp('t', i, 0)]);
      expect(calls).toHaveLength(1);
      const flushed = notifier.flush();
      await settle();
      expect(calls).toHaveLength(5);
      await succeedAll(calls);
      await flushed;
    });
  });
});
