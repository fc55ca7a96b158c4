// Tells twins about stored data at a bounded rate: one coalesced signal per device per window (DESIGN.md, principle 4).
import { randomUUID } from 'node:crypto';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_SIGNAL_DELAY_MS } from '../../twins/define-twin';
import { getTwinType } from '../../twins/registry';
import type { TelemetryBatch } from '../../twins/twin-core';
import { type Channel, type Datapoint, type LatestValue, datastreamKey } from '../../twins/types';

export interface TwinNotifierOptions {
  /** A device gets at most one signal per this window, however significant its data (ms). */
  readonly minIntervalMs: number;
  /** Signals in flight at once, across all devices. */
  readonly maxInFlight: number;
  /** Delay before retrying a signal that failed for a transient reason (ms). */
  readonly retryDelayMs: number;
}

export const DEFAULT_NOTIFIER_OPTIONS: TwinNotifierOptions = {
  minIntervalMs: 250,
  maxInFlight: 64,
  retryDelayMs: 1_000,
};

export interface TwinNotifierDeps {
  /** Sends the batch to the device's twin. Rejects with `gone: true` when the twin no longer runs. */
  signal(org: string, deviceId: string, batch: TelemetryBatch): Promise<void>;
  now(): number;
  setTimer(fn: () => void, ms: number): { cancel(): void };
  onError?(org: string, deviceId: string, err: unknown): void;
}

export class TwinGoneError extends Error {}

const FLUSH_ROUNDS = 5;

interface DeviceEntry {
  readonly org: string;
  readonly deviceId: string;
  twinType: string;
  pending: Map<string, Datapoint>;
  storedCount: number;
  channel: Channel;
  receivedAt: number;
  /** What the twin has been told, per datastream: the baseline for isSignificant. */
  readonly told: Map<string, LatestValue>;
  lastSentAt: number;
  dueAt: number;
  timer?: { cancel(): void };
  sending: boolean;
}

export interface NotifierStats {
  readonly reports: number;
  readonly signalsSent: number;
  readonly signalsFailed: number;
  readonly devicesPending: number;
}

export class TwinNotifier {
  private readonly devices = new Map<string, DeviceEntry>();
  private readonly ready: DeviceEntry[] = [];
  private inFlight = 0;
  private reports = 0;
  private signalsSent = 0;
  private signalsFailed = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly deps: TwinNotifierDeps,
    private readonly options: TwinNotifierOptions = DEFAULT_NOTIFIER_OPTIONS,
  ) {}

  /** Called after datapoints are durably stored. Never throws, never waits on Temporal. */
  report(
    org: string,
    deviceId: string,
    twinType: string,
    datapoints: readonly Datapoint[],
    channel: Channel,
    receivedAt: number,
  ): void {
    if (this.closed || datapoints.length === 0) return;
    this.reports++;
    const key = `${org}/${deviceId}`;
    let entry = this.devices.get(key);
    if (!entry) {
      entry = {
        org,
        deviceId,
        twinType,
        pending: new Map(),
        storedCount: 0,
        channel,
        receivedAt,
        told: new Map(),
        lastSentAt: Number.NEGATIVE_INFINITY,
        dueAt: Number.POSITIVE_INFINITY,
        sending: false,
      };
      this.devices.set(key, entry);
    }
    const type = getTwinType(twinType);
    let significant = entry.told.size === 0; // a device (re)appearing always matters
    let changed = significant;
    for (const dp of datapoints) {
      const dsKey = datastreamKey(dp.datastreamId, dp.feed);
      const queued = entry.pending.get(dsKey);
      if (queued && queued.at > dp.at) continue;
      entry.pending.set(dsKey, dp);
      const told = entry.told.get(dsKey);
      if (!changed && !sameValue(told?.value, dp.value)) changed = true;
      if (!significant && type?.isSignificant(dp, told)) significant = true;
    }
    entry.twinType = twinType;
    entry.storedCount += datapoints.length;
    entry.channel = channel;
    entry.receivedAt = Math.max(entry.receivedAt, receivedAt);

    const now = this.deps.now();
    const earliest = entry.lastSentAt + this.options.minIntervalMs;
    // Significant data at once; other changes within the type's delay; repeats of what the twin has, by heartbeat.
    const delay = significant
      ? 0
      : changed
        ? (type?.maxSignalDelayMs ?? DEFAULT_MAX_SIGNAL_DELAY_MS)
        : (type?.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    this.schedule(entry, Math.max(earliest, now + delay));
  }

  stats(): NotifierStats {
    let devicesPending = 0;
    for (const e of this.devices.values()) if (e.pending.size > 0) devicesPending++;
    return {
      reports: this.reports,
      signalsSent: this.signalsSent,
      signalsFailed: this.signalsFailed,
      devicesPending,
    };
  }

  /** Sends everything pending now (on shutdown) and waits for the signals in flight. */
  async flush(): Promise<void> {
    // Rounds: data that arrived while a device's signal was in flight, or a failed signal, goes in the next one.
    for (let round = 0; round < FLUSH_ROUNDS; round++) {
      for (const entry of this.devices.values()) {
        if (entry.pending.size > 0 && !entry.sending) this.schedule(entry, Number.NEGATIVE_INFINITY, true);
      }
      await this.whenIdle();
      if (![...this.devices.values()].some((e) => e.pending.size > 0)) return;
    }
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    for (const entry of this.devices.values()) entry.timer?.cancel();
  }

  private whenIdle(): Promise<void> {
    if (this.inFlight === 0 && this.ready.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(entry: DeviceEntry, at: number, force = false): void {
    if (!force && at >= entry.dueAt) return; // already due sooner
    entry.timer?.cancel();
    entry.dueAt = at;
    const wait = at - this.deps.now();
    if (wait <= 0 || force) {
      entry.timer = undefined;
      this.enqueue(entry);
    } else {
      entry.timer = this.deps.setTimer(() => {
        entry.timer = undefined;
        this.enqueue(entry);
      }, wait);
    }
  }

  private enqueue(entry: DeviceEntry): void {
    if (entry.sending || this.ready.includes(entry)) return;
    this.ready.push(entry);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.ready.length > 0) {
      const entry = this.ready.shift()!;
      if (entry.pending.size === 0) {
        entry.dueAt = Number.POSITIVE_INFINITY;
        continue;
      }
      void this.send(entry);
    }
    if (this.inFlight === 0 && this.ready.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      waiters.forEach((w) => w());
    }
  }

  private async send(entry: DeviceEntry): Promise<void> {
    const datapoints = [...entry.pending.values()];
    const batch: TelemetryBatch = {
      batchId: randomUUID(),
      channel: entry.channel,
      receivedAt: entry.receivedAt,
      datapoints,
      storedCount: entry.storedCount,
    };
    entry.pending = new Map();
    entry.storedCount = 0;
    entry.dueAt = Number.POSITIVE_INFINITY;
    entry.sending = true;
    entry.lastSentAt = this.deps.now();
    this.inFlight++;
    try {
      await this.deps.signal(entry.org, entry.deviceId, batch);
      this.signalsSent++;
      for (const dp of datapoints) {
        entry.told.set(datastreamKey(dp.datastreamId, dp.feed), {
          id: dp.datastreamId,
          feed: dp.feed,
          value: dp.value,
          at: dp.at,
        });
      }
    } catch (err) {
      this.signalsFailed++;
      this.deps.onError?.(entry.org, entry.deviceId, err);
      if (!(err instanceof TwinGoneError)) {
        // Put the batch back under anything newer that arrived meanwhile, and try again later.
        for (const dp of datapoints) {
          const k = datastreamKey(dp.datastreamId, dp.feed);
          const newer = entry.pending.get(k);
          if (!newer || newer.at < dp.at) entry.pending.set(k, dp);
        }
        entry.storedCount += batch.storedCount;
        this.finishSend(entry, this.deps.now() + this.options.retryDelayMs);
        return;
      }
      // The twin has ended: forget the device, including data that arrived during this signal.
      this.devices.delete(`${entry.org}/${entry.deviceId}`);
      entry.timer?.cancel();
      entry.timer = undefined;
      entry.pending = new Map();
    }
    this.finishSend(entry, entry.lastSentAt + this.options.minIntervalMs);
  }

  /** Reports that arrived during the send set dueAt; honour it, but not before `notBefore`. */
  private finishSend(entry: DeviceEntry, notBefore: number): void {
    entry.sending = false;
    this.inFlight--;
    if (
      entry.pending.size > 0 &&
      !this.closed &&
      this.devices.get(`${entry.org}/${entry.deviceId}`) === entry
    ) {
      entry.timer?.cancel();
      entry.timer = undefined;
      const due = Number.isFinite(entry.dueAt) ? entry.dueAt : notBefore;
      entry.dueAt = Number.POSITIVE_INFINITY;
      this.schedule(entry, Math.max(due, notBefore));
    }
    this.pump();
  }
}

/** Whether two datapoint values are the same: primitives by value, objects and arrays by their JSON. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}
