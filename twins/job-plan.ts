// Jobs, the pure part: one operation over many devices. Waves, success thresholds, the abort rule, the rate, the
// per-device deadline and the maintenance window decide what a job does next; the job workflow is a thin shell.
import type { OperationStatus } from './operations';

/** Where one device stands in a job. PENDING: not started; STARTED: its operation runs. */
export type ExecutionStatus =
  | 'PENDING'
  | 'STARTED'
  | 'SUCCESSFUL'
  | 'FAILED'
  | 'TIMEOUT'
  | 'EXPIRED'
  | 'CANCELLED'
  /** The operation could not be requested (device gone, decommissioned, or the request is invalid for it). */
  | 'REFUSED'
  /** Never started: the job was cancelled, stopped or aborted first. */
  | 'SKIPPED';

export const EXECUTION_STATUSES: readonly ExecutionStatus[] = [
  'PENDING',
  'STARTED',
  'SUCCESSFUL',
  'FAILED',
  'TIMEOUT',
  'EXPIRED',
  'CANCELLED',
  'REFUSED',
  'SKIPPED',
];

/** Statuses a device's execution ends in. */
export const FINISHED_EXECUTION: ReadonlySet<ExecutionStatus> = new Set([
  'SUCCESSFUL',
  'FAILED',
  'TIMEOUT',
  'EXPIRED',
  'CANCELLED',
  'REFUSED',
]);

export type JobStatus =
  | 'RUNNING'
  | 'PAUSED'
  | 'WAITING_APPROVAL'
  | 'COMPLETED'
  /** A wave missed its success threshold and the rollout says stop. */
  | 'STOPPED'
  /** The abort rule fired. */
  | 'ABORTED'
  | 'CANCELLED';

const FINAL_JOB: ReadonlySet<JobStatus> = new Set(['COMPLETED', 'STOPPED', 'ABORTED', 'CANCELLED']);
export const isJobFinal = (status: JobStatus): boolean => FINAL_JOB.has(status);

/** What a job runs on each device: the single-operation API's body. */
export interface JobOrder {
  readonly name: string;
  readonly parameters?: Record<string, unknown> | unknown[];
  readonly delivery?: 'auto' | 'push' | 'pending';
  readonly timeoutMs?: number;
  readonly ttlMs?: number;
  readonly retries?: number;
  readonly retriesDelayMs?: number;
  readonly retryResultList?: readonly string[];
}

export interface JobFilter {
  readonly type?: string;
  readonly tag?: string;
  readonly status?: string;
  readonly lifecycle?: 'ACTIVE' | 'DECOMMISSIONED';
  readonly q?: string;
}

/** Explicit device ids (stored as the job's executions), or a filter resolved at start or continuously. */
export type JobTarget =
  | { readonly kind: 'ids'; readonly count: number }
  | { readonly kind: 'filter'; readonly filter: JobFilter; readonly continuous: boolean };

export type WaveSpec = { readonly count: number } | { readonly percent: number };

export interface AbortRule {
  /** Execution statuses that count as failures (default FAILED, TIMEOUT, EXPIRED, REFUSED). */
  readonly failureTypes: readonly ExecutionStatus[];
  /** The job aborts once failures exceed this share of the finished devices. */
  readonly percent: number;
  /** ... and at least this many devices have finished. */
  readonly minFinished: number;
  /** Cancel the operations already running too, not only those not started. */
  readonly cancelRunning: boolean;
}

/** Days are 0 (Sunday) to 6; times are HH:MM local to the zone; end before start spans midnight. */
export interface MaintenanceWindow {
  readonly timeZone: string;
  readonly start: string;
  readonly end: string;
  readonly days?: readonly number[];
}

export interface Rollout {
  /** Operations started per minute at most; absent: no limit. */
  readonly ratePerMinute?: number;
  readonly maxInFlight: number;
  /** The listed waves in order; the devices after them form one last wave. */
  readonly waves: readonly WaveSpec[];
  /** Share of a wave's devices that must succeed before the next wave starts. */
  readonly successThresholdPercent?: number;
  readonly onThresholdMiss: 'pause' | 'stop';
  readonly abort?: AbortRule;
  /** A device whose operation has not ended this long after it started counts as TIMEOUT. */
  readonly deviceDeadlineMs?: number;
  /** Each wave after the first waits for an approval. */
  readonly approveWaves: boolean;
  readonly window?: MaintenanceWindow;
  /**
   * When the job stops (ms since epoch): nothing starts after it, what had not started is skipped and the job ends
   * STOPPED; running operations go on to their own end. `stopAfterMs` on create sets it from the creation time.
   */
  readonly stopAt?: number;
  readonly stopAfterMs?: number;
}

export const DEFAULT_FAILURE_TYPES: readonly ExecutionStatus[] = ['FAILED', 'TIMEOUT', 'EXPIRED', 'REFUSED'];

export interface InFlight {
  readonly seq: number;
  readonly deviceId: string;
  readonly operationId: string;
  readonly startedAt: number;
  readonly wave: number;
}

export interface WaveProgress {
  /** First seq of the wave and one past its last (null: open-ended, the last wave). */
  readonly start: number;
  readonly end: number | null;
  readonly started: number;
  readonly successful: number;
  readonly finished: number;
}

export type Counts = Record<ExecutionStatus, number>;

export interface JobProgress {
  readonly status: JobStatus;
  /** Why it paused, stopped or aborted. */
  readonly reason?: string;
  readonly total: number;
  /** The next seq to start. */
  readonly nextSeq: number;
  readonly counts: Counts;
  readonly inFlight: readonly InFlight[];
  readonly waves: readonly WaveProgress[];
  /** The wave whose devices are started now. */
  readonly wave: number;
  /** The highest wave an operator approved (approval mode). */
  readonly approvedWave: number;
  /** Recent starts (time, how many), for the per-minute rate. */
  readonly starts: readonly { readonly at: number; readonly n: number }[];
  readonly ratePerMinute?: number;
  readonly maxInFlight: number;
  /** Cancelling: the running operations are to be cancelled as well. */
  readonly cancelRunning: boolean;
  readonly startedAt: number;
  readonly firstStartAt?: number;
  readonly finishedAt?: number;
}

export const emptyCounts = (): Counts =>
  Object.fromEntries(EXECUTION_STATUSES.map((s) => [s, 0])) as unknown as Counts;

/** The seq one past each listed wave's end, from the count of devices known at the start. */
export function waveEnds(waves: readonly WaveSpec[], total: number): number[] {
  const ends: number[] = [];
  let at = 0;
  for (const w of waves) {
    const size = 'count' in w ? w.count : Math.max(1, Math.ceil((w.percent / 100) * total));
    at += size;
    ends.push(at);
  }
  return ends;
}

export function startProgress(rollout: Rollout, total: number, now: number): JobProgress {
  const waves: WaveProgress[] = [];
  let start = 0;
  for (const end of waveEnds(rollout.waves, total)) {
    if (start >= total) break;
    waves.push({ start, end: Math.min(end, total), started: 0, successful: 0, finished: 0 });
    start = Math.min(end, total);
  }
  waves.push({ start, end: null, started: 0, successful: 0, finished: 0 });
  return {
    status: 'RUNNING',
    total,
    nextSeq: 0,
    counts: { ...emptyCounts(), PENDING: total },
    inFlight: [],
    waves,
    wave: 0,
    approvedWave: 0,
    starts: [],
    ...(rollout.ratePerMinute !== undefined ? { ratePerMinute: rollout.ratePerMinute } : {}),
    maxInFlight: rollout.maxInFlight,
    cancelRunning: false,
    startedAt: now,
  };
}

const MINUTE = 60_000;

/** Starts in the last minute. */
function startedInLastMinute(p: JobProgress, now: number): number {
  return p.starts.filter((s) => s.at > now - MINUTE).reduce((n, s) => n + s.n, 0);
}

const waveEnd = (w: WaveProgress, total: number): number => (w.end === null ? total : Math.min(w.end, total));

/** How many devices may start now: the wave, the in-flight bound and the rate all allow it. */
export function startBudget(p: JobProgress, now: number): number {
  if (p.status !== 'RUNNING') return 0;
  const wave = p.waves[p.wave];
  if (!wave) return 0;
  const inWave = waveEnd(wave, p.total) - p.nextSeq;
  const slots = p.maxInFlight - p.inFlight.length;
  const rate = p.ratePerMinute === undefined ? Infinity : p.ratePerMinute - startedInLastMinute(p, now);
  return Math.max(0, Math.min(inWave, slots, rate));
}

/** When the rate allows the next start (ms since epoch), or undefined when it allows one now or has no limit. */
export function nextRateSlot(p: JobProgress, now: number): number | undefined {
  if (p.ratePerMinute === undefined || startedInLastMinute(p, now) < p.ratePerMinute) return undefined;
  const oldest = p.starts.find((s) => s.at > now - MINUTE);
  return oldest ? oldest.at + MINUTE : undefined;
}

/** The result of requesting one device's operation. */
export type StartResult =
  | {
      readonly seq: number;
      readonly deviceId: string;
      readonly operationId: string;
      readonly status: OperationStatus;
    }
  | { readonly seq: number; readonly deviceId: string; readonly refused: string };

/** The execution status of an operation's status: STARTED until it is final. */
export function executionOf(status: OperationStatus): ExecutionStatus {
  switch (status) {
    case 'SUCCESSFUL':
    case 'FAILED':
    case 'TIMEOUT':
    case 'EXPIRED':
    case 'CANCELLED':
      return status;
    default:
      return 'STARTED';
  }
}

function bump(counts: Counts, from: ExecutionStatus, to: ExecutionStatus): Counts {
  return { ...counts, [from]: counts[from] - 1, [to]: counts[to] + 1 };
}

function waveOf(p: JobProgress, seq: number): number {
  const i = p.waves.findIndex((w) => seq >= w.start && (w.end === null || seq < w.end));
  return i < 0 ? p.waves.length - 1 : i;
}

function finishInWave(waves: readonly WaveProgress[], wave: number, status: ExecutionStatus): WaveProgress[] {
  return waves.map((w, i) =>
    i === wave
      ? { ...w, finished: w.finished + 1, successful: w.successful + (status === 'SUCCESSFUL' ? 1 : 0) }
      : w,
  );
}

/** Applies the results of one batch of starts (the batch took seqs nextSeq .. nextSeq + attempted - 1). */
export function afterStarted(
  p: JobProgress,
  attempted: number,
  results: readonly StartResult[],
  now: number,
): JobProgress {
  let next: JobProgress = {
    ...p,
    nextSeq: p.nextSeq + attempted,
    starts: [...p.starts.filter((s) => s.at > now - MINUTE), { at: now, n: attempted }],
    ...(p.firstStartAt === undefined && attempted > 0 ? { firstStartAt: now } : {}),
  };
  const inFlight = [...p.inFlight];
  for (const r of results) {
    const wave = waveOf(next, r.seq);
    next = { ...next, waves: next.waves.map((w, i) => (i === wave ? { ...w, started: w.started + 1 } : w)) };
    if ('refused' in r) {
      next = { ...next, counts: bump(next.counts, 'PENDING', 'REFUSED') };
      next = { ...next, waves: finishInWave(next.waves, wave, 'REFUSED') };
      continue;
    }
    const status = executionOf(r.status);
    next = { ...next, counts: bump(next.counts, 'PENDING', status) };
    if (status === 'STARTED')
      inFlight.push({ seq: r.seq, deviceId: r.deviceId, operationId: r.operationId, startedAt: now, wave });
    else next = { ...next, waves: finishInWave(next.waves, wave, status) };
  }
  return { ...next, inFlight };
}

/** Operations that ended (from the store) or whose device deadline passed: off the in-flight list. */
export function afterFinished(
  p: JobProgress,
  ended: readonly { readonly operationId: string; readonly status: ExecutionStatus }[],
): JobProgress {
  const byId = new Map(ended.map((e) => [e.operationId, e.status]));
  let counts = p.counts;
  let waves = p.waves;
  const inFlight: InFlight[] = [];
  for (const f of p.inFlight) {
    const status = byId.get(f.operationId);
    if (status === undefined || !FINISHED_EXECUTION.has(status)) {
      inFlight.push(f);
      continue;
    }
    counts = bump(counts, 'STARTED', status);
    waves = finishInWave(waves, f.wave, status);
  }
  return { ...p, counts, waves, inFlight };
}

/** In-flight operations past the per-device deadline. */
export function pastDeadline(p: JobProgress, deadlineMs: number | undefined, now: number): InFlight[] {
  if (deadlineMs === undefined) return [];
  return p.inFlight.filter((f) => now - f.startedAt >= deadlineMs);
}

/** The abort rule's verdict over the devices finished so far. */
export function abortReason(p: JobProgress, rule: AbortRule | undefined): string | undefined {
  if (!rule) return undefined;
  const finished = [...FINISHED_EXECUTION].reduce((n, s) => n + p.counts[s], 0);
  if (finished < rule.minFinished || finished === 0) return undefined;
  const failures = rule.failureTypes.reduce((n, s) => n + p.counts[s], 0);
  const share = (failures / finished) * 100;
  return share > rule.percent
    ? `${failures} of ${finished} finished devices failed (${share.toFixed(1)} % > ${rule.percent} %)`
    : undefined;
}

/** Everything not started counts as SKIPPED; the job starts nothing more. */
export function skipRest(p: JobProgress): JobProgress {
  const rest = p.total - p.nextSeq;
  return { ...p, nextSeq: p.total, counts: { ...p.counts, PENDING: 0, SKIPPED: p.counts.SKIPPED + rest } };
}

/** The job's stop time (if it has one) has come. */
export function stopTimePassed(rollout: Rollout, now: number): boolean {
  return rollout.stopAt !== undefined && now >= rollout.stopAt;
}

function end(p: JobProgress, status: JobStatus, now: number, reason?: string): JobProgress {
  return { ...skipRest(p), status, finishedAt: now, ...(reason !== undefined ? { reason } : {}) };
}

/**
 * What the job does after its latest news: abort, end a wave (threshold, approval), or complete. `more` says
 * whether devices may still join (a continuous job).
 */
export function evaluate(p: JobProgress, rollout: Rollout, more: boolean, now: number): JobProgress {
  if (isJobFinal(p.status)) return p;
  if (stopTimePassed(rollout, now))
    return end(p, 'STOPPED', now, 'its stop time passed: what had not started is skipped');
  const abort = abortReason(p, rollout.abort);
  if (abort)
    return { ...end(p, 'ABORTED', now, abort), cancelRunning: rollout.abort?.cancelRunning ?? false };
  const wave = p.waves[p.wave];
  if (!wave) return p;
  const waveDone =
    p.nextSeq >= waveEnd(wave, p.total) && p.inFlight.every((f) => f.wave !== p.wave) && wave.end !== null;
  if (waveDone && p.status === 'RUNNING') return afterWave(p, rollout, more, now);
  if (wave.end === null && !more && p.nextSeq >= p.total && p.inFlight.length === 0)
    return { ...p, status: 'COMPLETED', finishedAt: now };
  return p;
}

function afterWave(p: JobProgress, rollout: Rollout, more: boolean, now: number): JobProgress {
  const wave = p.waves[p.wave]!;
  const threshold = rollout.successThresholdPercent;
  if (threshold !== undefined && wave.finished > 0) {
    const share = (wave.successful / wave.finished) * 100;
    if (share < threshold) {
      const reason = `wave ${p.wave + 1}: ${share.toFixed(1)} % successful, below the threshold of ${threshold} %`;
      if (rollout.onThresholdMiss === 'stop') return end(p, 'STOPPED', now, reason);
      return { ...p, status: 'PAUSED', reason, wave: p.wave + 1 };
    }
  }
  const next = p.wave + 1;
  const following = p.waves[next];
  // An empty last wave of a job that takes no more devices needs no approval: it completes.
  const empty = following !== undefined && following.end === null && following.start >= p.total && !more;
  if (rollout.approveWaves && p.approvedWave < next && !empty)
    return { ...p, status: 'WAITING_APPROVAL', reason: `wave ${next + 1} waits for approval`, wave: next };
  return { ...p, wave: next };
}

/** Devices joined (a continuous job): the open-ended last wave grows with them. */
export function addTargets(p: JobProgress, total: number): JobProgress {
  if (total <= p.total) return p;
  return { ...p, total, counts: { ...p.counts, PENDING: p.counts.PENDING + (total - p.total) } };
}

// --- live control: each answers the new progress, or why it refuses ---

export type Control =
  | { readonly kind: 'pause' }
  | { readonly kind: 'resume' }
  | { readonly kind: 'cancel'; readonly cancelRunning: boolean }
  | { readonly kind: 'approve' }
  | { readonly kind: 'rate'; readonly ratePerMinute?: number | null; readonly maxInFlight?: number };

export type ControlResult =
  | { readonly ok: true; readonly progress: JobProgress }
  | { readonly ok: false; readonly code: 'CONFLICT'; readonly message: string };

export function control(p: JobProgress, c: Control, now: number): ControlResult {
  if (isJobFinal(p.status))
    return { ok: false, code: 'CONFLICT', message: `the job has already ended (${p.status})` };
  const refuse = (message: string): ControlResult => ({ ok: false, code: 'CONFLICT', message });
  const { reason: _reason, ...rest } = p;
  void _reason;
  switch (c.kind) {
    case 'pause':
      return { ok: true, progress: { ...rest, status: 'PAUSED', reason: 'paused by an operator' } };
    case 'resume':
      if (p.status === 'WAITING_APPROVAL') return refuse('the job waits for an approval, not a resume');
      return { ok: true, progress: { ...rest, status: 'RUNNING' } };
    case 'approve':
      if (p.status !== 'WAITING_APPROVAL') return refuse(`the job is ${p.status}, not waiting for approval`);
      return { ok: true, progress: { ...rest, status: 'RUNNING', approvedWave: p.wave } };
    case 'cancel':
      return {
        ok: true,
        progress: {
          ...end(rest, 'CANCELLED', now, 'cancelled by an operator'),
          cancelRunning: c.cancelRunning,
        },
      };
    case 'rate': {
      const { ratePerMinute: _r, ...noRate } = p;
      void _r;
      const base = c.ratePerMinute === null ? noRate : p;
      return {
        ok: true,
        progress: {
          ...base,
          ...(typeof c.ratePerMinute === 'number' ? { ratePerMinute: c.ratePerMinute } : {}),
          ...(c.maxInFlight !== undefined ? { maxInFlight: c.maxInFlight } : {}),
        },
      };
    }
  }
}

/** Expected time left (ms) at the rate seen so far; undefined before any device finished. */
export function eta(p: JobProgress, now: number): number | undefined {
  const done = p.total - p.counts.PENDING - p.counts.STARTED;
  if (p.firstStartAt === undefined || done <= 0 || isJobFinal(p.status)) return undefined;
  const left = p.counts.PENDING + p.counts.STARTED;
  return Math.round(((now - p.firstStartAt) / done) * left);
}

// --- the maintenance window ---

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

export function checkWindow(w: MaintenanceWindow): string | undefined {
  if (!HHMM.test(w.start) || !HHMM.test(w.end)) return 'window start and end are HH:MM';
  if (w.start === w.end) return 'window start and end must differ';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: w.timeZone });
  } catch {
    return `unknown time zone ${w.timeZone}`;
  }
  if (w.days && (w.days.length === 0 || w.days.some((d) => !Number.isInteger(d) || d < 0 || d > 6)))
    return 'window days are 0 (Sunday) to 6';
  return undefined;
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const formatters = new Map<string, Intl.DateTimeFormat>();

function localTime(zone: string, at: number): { day: number; minute: number } {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(zone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(new Date(at)).map((x) => [x.type, x.value]));
  return {
    day: WEEKDAYS.indexOf(parts.weekday ?? ''),
    minute: Number(parts.hour) * 60 + Number(parts.minute),
  };
}

const toMinute = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

export function windowOpen(w: MaintenanceWindow, at: number): boolean {
  const { day, minute } = localTime(w.timeZone, at);
  const start = toMinute(w.start);
  const stop = toMinute(w.end);
  const onDay = (d: number) => !w.days || w.days.includes(d);
  if (start < stop) return onDay(day) && minute >= start && minute < stop;
  // Spans midnight: the evening part belongs to its day, the morning part to the day before.
  return (onDay(day) && minute >= start) || (onDay((day + 6) % 7) && minute < stop);
}

/** The next time the window opens (ms since epoch), at minute precision, within 8 days; now when open. */
export function nextOpening(w: MaintenanceWindow, now: number): number {
  if (windowOpen(w, now)) return now;
  let at = Math.ceil(now / MINUTE) * MINUTE;
  for (let i = 0; i < 8 * 24 * 60; i++, at += MINUTE) if (windowOpen(w, at)) return at;
  return at;
}
