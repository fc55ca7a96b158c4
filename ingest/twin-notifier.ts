// Tells twins about stored data at a bounded rate: one coalesced signal per device per window (DESIGN.md, principle 4).
import { randomUUID } from 'node:crypto';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_SIGNAL_DELAY_MS } from '../twins/define-twin';
import { getTwinType } from '../twins/registry';
import type { TelemetryBatch } from '../twins/twin-core';
import { type Channel, type Datapoint, type LatestValue, datastreamKey } from '../twins/types';

export interface TwinNotifierOptions {
  /** A device gets at most one signal per this window, however significant its data (ms). */
  readonly minIntervalMs: number;
  /** Signals in flight at once, across all devices. */
  readonly maxInFlight: number;
  /** Delay before retrying a signal that failed for a transient reason (ms). */
  readonly retryDelayMs: number;
  /**
   * Signals per second at most, across all devices (0: no limit): Temporal's load from data, whatever the
   * fleet's size or message rate. When due signals exceed it they wait, significant ones first, and keep
   * coalescing meanwhile, so a waiting device's twin gets everything in one later signal.
   */
  readonly maxSignalsPerSecond?: number;
  /**
   * The share of that budget all signals get while the ingest is under pressure (`underPressure`): the store's
   * acknowledgements come first, and twins catch up once it eases. Significant signals still go first.
   */
  readonly shareUnderPressure?: number;
}

const DEFAULT_NOTIFIER_OPTIONS: TwinNotifierOptions = {
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
  /** Whether the ingest is backed up (messages waiting for its group commits); signals then slow down. */
  underPressure?(): boolean;
}

export class TwinGoneError extends Error {}

const FLUSH_ROUNDS = 5;

/** Signals a second at least, however small their share under pressure. */
const MIN_SIGNALS_PER_SECOND = 1;

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
  /** The ready queue the device waits in, if any (it may also have a stale place in the other). */
  queuedIn?: 'urgent' | 'regular';
  /** Holds data the twin type called significant since its last signal. */
  urgent: boolean;
  /** When data for the device last came (this process's clock). */
  lastReportAt: number;
}

export interface NotifierStats {
  readonly reports: number;
  readonly signalsSent: number;
  readonly signalsFailed: number;
  readonly devicesPending: number;
}

export class TwinNotifier {
  private readonly devices = new Map<string, DeviceEntry>();
  /** Due devices, significant ones apart so that they go first when the signal budget is short. */
  private readonly ready = { urgent: new Queue<DeviceEntry>(), regular: new Queue<DeviceEntry>() };
  /** Signal budget: tokens, refilled at maxSignalsPerSecond up to one second's worth. */
  private tokens: number;
  private tokensAt: number;
  private budgetTimer?: { cancel(): void };
  private inFlight = 0;
  private reports = 0;
  private signalsSent = 0;
  private signalsFailed = 0;
  private closed = false;
  private flushing = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly deps: TwinNotifierDeps,
    private readonly options: TwinNotifierOptions = DEFAULT_NOTIFIER_OPTIONS,
  ) {
    this.tokens = this.budget();
    this.tokensAt = deps.now();
  }

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
        urgent: false,
        lastReportAt: this.deps.now(),
      };
      this.devices.set(key, entry);
    }
    const type = getTwinType(twinType);
    const reportAt = this.deps.now();
    // A device (re)appearing always matters, and so does one silent for long enough that its twin may have
    // marked it OFFLINE: it comes back at once.
    const offlineAfter = type?.behaviours.offlineAfterMs ?? 0;
    let significant =
      entry.told.size === 0 || (offlineAfter > 0 && reportAt - entry.lastReportAt >= offlineAfter);
    entry.lastReportAt = reportAt;
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
    if (significant) entry.urgent = true;
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
    if (significant && entry.queuedIn === 'regular') {
      // Already waiting for the budget among routine signals: move it ahead (its old place goes stale).
      entry.queuedIn = 'urgent';
      this.ready.urgent.push(entry);
      this.pump();
    }
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
    // On shutdown the signal budget does not apply: everything pending goes now.
    this.flushing = true;
    try {
      // Rounds: data that arrived while a device's signal was in flight, or a failed signal, goes in the next one.
      for (let round = 0; round < FLUSH_ROUNDS; round++) {
        for (const entry of this.devices.values()) {
          if (entry.pending.size > 0 && !entry.sending) this.schedule(entry, Number.NEGATIVE_INFINITY, true);
        }
        this.pump();
        await this.whenIdle();
        if (![...this.devices.values()].some((e) => e.pending.size > 0)) return;
      }
    } finally {
      this.flushing = false;
    }
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    for (const entry of this.devices.values()) entry.timer?.cancel();
    this.budgetTimer?.cancel();
  }

  private whenIdle(): Promise<void> {
    if (this.inFlight === 0 && this.readyCount() === 0) return Promise.resolve();
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
    if (entry.sending || entry.queuedIn) return;
    entry.queuedIn = entry.urgent ? 'urgent' : 'regular';
    this.ready[entry.queuedIn].push(entry);
    this.pump();
  }

  private readyCount(): number {
    return this.ready.urgent.length + this.ready.regular.length;
  }

  private budget(): number {
    return this.options.maxSignalsPerSecond ?? 0;
  }

  /** Signals per second now: the whole budget, or its share while the ingest is under pressure. */
  private budgetNow(): number {
    const perSecond = this.budget();
    const share = this.options.shareUnderPressure;
    if (share === undefined || perSecond <= 0 || !this.deps.underPressure?.()) return perSecond;
    return Math.max(perSecond * share, MIN_SIGNALS_PER_SECOND);
  }

  /** Takes one signal from the budget; false when it is spent (a timer then pumps again). */
  private takeToken(): boolean {
    const perSecond = this.budgetNow();
    if (perSecond <= 0 || this.flushing) return true;
    const now = this.deps.now();
    this.tokens = Math.min(perSecond, this.tokens + ((now - this.tokensAt) * perSecond) / 1000);
    this.tokensAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    if (!this.budgetTimer && !this.closed) {
      const wait = Math.ceil(((1 - this.tokens) * 1000) / perSecond);
      this.budgetTimer = this.deps.setTimer(() => {
        this.budgetTimer = undefined;
        this.pump();
      }, wait);
    }
    return false;
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.readyCount() > 0) {
      const name = this.ready.urgent.length > 0 ? 'urgent' : 'regular';
      const queue = this.ready[name];
      const entry = queue.peek()!;
      if (entry.queuedIn !== name) {
        queue.shift(); // a stale place: the device moved ahead, or has been sent since
        continue;
      }
      if (entry.pending.size > 0 && !this.takeToken()) break;
      queue.shift();
      entry.queuedIn = undefined;
      if (entry.pending.size === 0) {
        entry.dueAt = Number.POSITIVE_INFINITY;
        continue;
      }
      void this.send(entry);
    }
    if (this.inFlight === 0 && this.readyCount() === 0) {
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
    entry.urgent = false;
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

/** A FIFO queue with O(1) push and shift (an array's shift is O(n), and thousands of devices may wait). */
class Queue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
