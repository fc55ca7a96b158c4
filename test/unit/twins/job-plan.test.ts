// The rollout plan of a job: waves, thresholds, the abort rule, the rate, deadlines, windows and live control.
import {
  type JobProgress,
  type Rollout,
  type StartResult,
  abortReason,
  addTargets,
  afterFinished,
  afterStarted,
  checkWindow,
  control,
  eta,
  evaluate,
  nextOpening,
  nextRateSlot,
  pastDeadline,
  startBudget,
  startProgress,
  stopTimePassed,
  waveEnds,
  windowOpen,
} from '../../../twins/job-plan';

const T0 = Date.UTC(2026, 0, 5, 12, 0); // a Monday, 12:00 UTC
const rollout = (r: Partial<Rollout> = {}): Rollout => ({
  maxInFlight: 100,
  waves: [],
  onThresholdMiss: 'pause',
  approveWaves: false,
  ...r,
});

/** Starts `count` devices from nextSeq, each answered with `status` (or refused). */
function start(p: JobProgress, count: number, status: 'IN_PROGRESS' | 'SUCCESSFUL' | 'refused', now = T0) {
  const results: StartResult[] = Array.from({ length: count }, (_, i) => {
    const seq = p.nextSeq + i;
    return status === 'refused'
      ? { seq, deviceId: `d${seq}`, refused: 'NOT_FOUND: gone' }
      : { seq, deviceId: `d${seq}`, operationId: `op${seq}`, status };
  });
  return afterStarted(p, count, results, now);
}

const finish = (p: JobProgress, seqs: number[], status: 'SUCCESSFUL' | 'FAILED' | 'TIMEOUT') =>
  afterFinished(
    p,
    seqs.map((s) => ({ operationId: `op${s}`, status })),
  );

describe('waves', () => {
  it('cuts waves by count and percent from the devices known at the start, the rest forming the last', () => {
    expect(waveEnds([{ count: 10 }, { percent: 50 }], 1_000)).toEqual([10, 510]);
    const p = startProgress(rollout({ waves: [{ count: 10 }, { percent: 50 }] }), 1_000, T0);
    expect(p.waves.map((w) => [w.start, w.end])).toEqual([
      [0, 10],
      [10, 510],
      [510, null],
    ]);
    expect(p.counts.PENDING).toBe(1_000);
  });

  it('starts no further than the current wave, then moves on once every device of it has finished', () => {
    const r = rollout({ waves: [{ count: 3 }] });
    let p = startProgress(r, 10, T0);
    expect(startBudget(p, T0)).toBe(3);
    p = start(p, 3, 'IN_PROGRESS');
    expect(startBudget(p, T0)).toBe(0);
    p = evaluate(finish(p, [0, 1], 'SUCCESSFUL'), r, false, T0);
    expect(p.wave).toBe(0);
    p = evaluate(finish(p, [2], 'SUCCESSFUL'), r, false, T0);
    expect(p.wave).toBe(1);
    expect(startBudget(p, T0)).toBe(7);
  });

  it('completes once the last wave has started everything and nothing runs', () => {
    const r = rollout();
    let p = start(startProgress(r, 2, T0), 2, 'SUCCESSFUL');
    p = evaluate(p, r, false, T0 + 5);
    expect(p).toMatchObject({ status: 'COMPLETED', finishedAt: T0 + 5 });
    expect(p.counts).toMatchObject({ SUCCESSFUL: 2, PENDING: 0 });
  });

  it('keeps a continuous job open for devices that join later', () => {
    const r = rollout();
    let p = evaluate(start(startProgress(r, 1, T0), 1, 'SUCCESSFUL'), r, true, T0);
    expect(p.status).toBe('RUNNING');
    p = addTargets(p, 3);
    expect(p.counts.PENDING).toBe(2);
    expect(startBudget(p, T0)).toBe(2);
  });

  it('completes an empty job at once', () => {
    expect(evaluate(startProgress(rollout(), 0, T0), rollout(), false, T0).status).toBe('COMPLETED');
  });
});

describe('the success threshold', () => {
  const r = (onThresholdMiss: 'pause' | 'stop') =>
    rollout({ waves: [{ count: 4 }], successThresholdPercent: 75, onThresholdMiss });

  it('lets the next wave start when the wave reached it', () => {
    let p = start(startProgress(r('stop'), 10, T0), 4, 'IN_PROGRESS');
    p = finish(finish(p, [0, 1, 2], 'SUCCESSFUL'), [3], 'FAILED');
    expect(evaluate(p, r('stop'), false, T0)).toMatchObject({ status: 'RUNNING', wave: 1 });
  });

  it('stops the job and skips the rest when a wave misses it and the rollout says stop', () => {
    let p = start(startProgress(r('stop'), 10, T0), 4, 'IN_PROGRESS');
    p = evaluate(finish(finish(p, [0, 1], 'SUCCESSFUL'), [2, 3], 'FAILED'), r('stop'), false, T0);
    expect(p.status).toBe('STOPPED');
    expect(p.reason).toMatch(/50.0 % successful/);
    expect(p.counts).toMatchObject({ SKIPPED: 6, PENDING: 0 });
  });

  it('pauses before the next wave when the rollout says pause; resume goes on', () => {
    let p = start(startProgress(r('pause'), 10, T0), 4, 'IN_PROGRESS');
    p = evaluate(finish(p, [0, 1, 2, 3], 'FAILED'), r('pause'), false, T0);
    expect(p).toMatchObject({ status: 'PAUSED', wave: 1 });
    expect(startBudget(p, T0)).toBe(0);
    const resumed = control(p, { kind: 'resume' }, T0);
    expect(resumed.ok && startBudget(resumed.progress, T0)).toBe(6);
  });
});

describe('the stop time', () => {
  const r = rollout({ stopAt: T0 + 60_000 });

  it('changes nothing before it; at it the job stops, skipping what had not started, running ones left to end', () => {
    const p = start(startProgress(r, 10, T0), 3, 'IN_PROGRESS');
    expect(stopTimePassed(r, T0 + 59_999)).toBe(false);
    expect(evaluate(p, r, false, T0 + 59_999)).toBe(p);
    const stopped = evaluate(p, r, false, T0 + 60_000);
    expect(stopped).toMatchObject({ status: 'STOPPED', finishedAt: T0 + 60_000, cancelRunning: false });
    expect(stopped.reason).toMatch(/stop time passed/);
    expect(stopped.counts).toMatchObject({ STARTED: 3, SKIPPED: 7, PENDING: 0 });
    // What was running still reports its end.
    expect(finish(stopped, [0, 1, 2], 'SUCCESSFUL').counts).toMatchObject({ SUCCESSFUL: 3, STARTED: 0 });
  });

  it('stops a paused job or one waiting for an approval too', () => {
    const paused = control(startProgress(r, 10, T0), { kind: 'pause' }, T0);
    expect(paused.ok && evaluate(paused.progress, r, false, T0 + 60_000).status).toBe('STOPPED');
  });

  it('means nothing to a job without one', () => {
    expect(stopTimePassed(rollout(), Number.MAX_SAFE_INTEGER)).toBe(false);
  });
});

describe('the abort rule', () => {
  const rule = {
    failureTypes: ['FAILED' as const, 'TIMEOUT' as const],
    percent: 20,
    minFinished: 5,
    cancelRunning: true,
  };

  it('waits for the minimum of finished devices, then aborts above the share', () => {
    const r = rollout({ abort: rule });
    let p = start(startProgress(r, 100, T0), 10, 'IN_PROGRESS');
    p = finish(p, [0, 1], 'FAILED');
    expect(abortReason(p, rule)).toBeUndefined(); // 2 finished < 5
    p = finish(p, [2, 3, 4], 'SUCCESSFUL');
    expect(abortReason(p, rule)).toMatch(/2 of 5/); // 40 % > 20 %
    p = evaluate(p, r, false, T0);
    expect(p).toMatchObject({ status: 'ABORTED', cancelRunning: true });
    expect(p.counts).toMatchObject({ SKIPPED: 90, STARTED: 5 });
  });

  it('counts refusals only when asked to', () => {
    let p = start(startProgress(rollout(), 10, T0), 10, 'refused');
    expect(abortReason(p, rule)).toBeUndefined();
    p = start(startProgress(rollout(), 10, T0), 10, 'refused');
    expect(abortReason(p, { ...rule, failureTypes: ['REFUSED'] })).toMatch(/10 of 10/);
  });
});

describe('the rate and the in-flight bound', () => {
  it('starts at most maxInFlight at once', () => {
    const p = startProgress(rollout({ maxInFlight: 5 }), 100, T0);
    expect(startBudget(p, T0)).toBe(5);
    expect(startBudget(start(p, 3, 'IN_PROGRESS'), T0)).toBe(2);
  });

  it('starts at most ratePerMinute in any minute and says when the next slot opens', () => {
    let p = startProgress(rollout({ ratePerMinute: 10 }), 100, T0);
    p = start(p, 10, 'SUCCESSFUL', T0);
    expect(startBudget(p, T0 + 1_000)).toBe(0);
    expect(nextRateSlot(p, T0 + 1_000)).toBe(T0 + 60_000);
    expect(startBudget(p, T0 + 60_001)).toBe(10);
  });

  it('changes rate and in-flight bound live, and lifts the rate on null', () => {
    const p = startProgress(rollout({ ratePerMinute: 10 }), 100, T0);
    const faster = control(p, { kind: 'rate', ratePerMinute: 50, maxInFlight: 20 }, T0);
    expect(faster.ok && [faster.progress.ratePerMinute, faster.progress.maxInFlight]).toEqual([50, 20]);
    const free = control(p, { kind: 'rate', ratePerMinute: null }, T0);
    expect(free.ok && free.progress.ratePerMinute).toBeUndefined();
  });
});

describe('the per-device deadline', () => {
  it('finds the operations running longer than the deadline', () => {
    let p = start(startProgress(rollout(), 10, T0), 2, 'IN_PROGRESS', T0);
    p = start(p, 2, 'IN_PROGRESS', T0 + 30_000);
    expect(pastDeadline(p, 60_000, T0 + 60_000).map((f) => f.seq)).toEqual([0, 1]);
    expect(pastDeadline(p, undefined, T0 + 1e9)).toEqual([]);
    const timedOut = afterFinished(p, [{ operationId: 'op0', status: 'TIMEOUT' }]);
    expect(timedOut.counts).toMatchObject({ TIMEOUT: 1, STARTED: 3 });
  });
});

describe('approval between waves', () => {
  it('waits for an approval before each wave after the first', () => {
    const r = rollout({ waves: [{ count: 2 }], approveWaves: true });
    let p = evaluate(start(startProgress(r, 5, T0), 2, 'SUCCESSFUL'), r, false, T0);
    expect(p).toMatchObject({ status: 'WAITING_APPROVAL', wave: 1 });
    expect(startBudget(p, T0)).toBe(0);
    const resumed = control(p, { kind: 'resume' }, T0);
    expect(resumed.ok).toBe(false);
    const approved = control(p, { kind: 'approve' }, T0);
    expect(approved.ok && approved.progress.status).toBe('RUNNING');
    p = approved.ok ? approved.progress : p;
    expect(startBudget(p, T0)).toBe(3);
  });
});

describe('live control', () => {
  it('pauses, resumes and cancels; refuses anything once the job has ended', () => {
    let p = start(startProgress(rollout(), 10, T0), 4, 'IN_PROGRESS');
    const paused = control(p, { kind: 'pause' }, T0);
    expect(paused.ok && startBudget(paused.progress, T0)).toBe(0);
    const cancelled = control(p, { kind: 'cancel', cancelRunning: false }, T0);
    expect(cancelled.ok && cancelled.progress).toMatchObject({
      status: 'CANCELLED',
      cancelRunning: false,
      counts: expect.objectContaining({ SKIPPED: 6, STARTED: 4 }),
    });
    p = cancelled.ok ? cancelled.progress : p;
    expect(control(p, { kind: 'resume' }, T0)).toMatchObject({ ok: false, code: 'CONFLICT' });
    // What was running still finishes and is counted.
    expect(afterFinished(p, [{ operationId: 'op0', status: 'SUCCESSFUL' }]).counts.SUCCESSFUL).toBe(1);
  });

  it('estimates the time left from the pace so far', () => {
    let p = start(startProgress(rollout(), 10, T0), 5, 'SUCCESSFUL', T0);
    p = { ...p, firstStartAt: T0 };
    expect(eta(p, T0 + 5_000)).toBe(5_000);
  });
});

describe('the maintenance window', () => {
  const w = { timeZone: 'Europe/Madrid', start: '22:00', end: '02:00', days: [1, 2, 3, 4, 5] };

  it('checks its fields', () => {
    expect(checkWindow(w)).toBeUndefined();
    expect(checkWindow({ ...w, timeZone: 'Mars/Olympus' })).toMatch(/time zone/);
    expect(checkWindow({ ...w, start: '25:00' })).toMatch(/HH:MM/);
    expect(checkWindow({ ...w, days: [7] })).toMatch(/days/);
  });

  it('is open in local time, across midnight, on the listed days only', () => {
    // Monday 12:00 UTC is 13:00 in Madrid (winter): closed.
    expect(windowOpen(w, T0)).toBe(false);
    // Monday 21:30 UTC = 22:30 Madrid: open; Tuesday 00:30 Madrid belongs to Monday's window.
    expect(windowOpen(w, Date.UTC(2026, 0, 5, 21, 30))).toBe(true);
    expect(windowOpen(w, Date.UTC(2026, 0, 5, 23, 30))).toBe(true);
    // Saturday 22:30 Madrid: not a listed day.
    expect(windowOpen(w, Date.UTC(2026, 0, 10, 21, 30))).toBe(false);
  });

  it('finds the next opening', () => {
    expect(nextOpening(w, T0)).toBe(Date.UTC(2026, 0, 5, 21, 0));
    // Friday night's window ends Saturday 02:00; the next opens Monday 22:00 Madrid.
    expect(nextOpening(w, Date.UTC(2026, 0, 10, 9, 0))).toBe(Date.UTC(2026, 0, 12, 21, 0));
    expect(nextOpening(w, Date.UTC(2026, 0, 5, 21, 30))).toBe(Date.UTC(2026, 0, 5, 21, 30));
  });
});
