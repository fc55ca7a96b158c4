// The event log's pure parts: what each write stands for, the tail's order and holes, grouped appends, datapoint
// batches and filters.
import { alarmEvents, jobEvents, operationEvents, snapshotEvents } from '../../../events/derive';
import { pointEvents } from '../../../events/datapoints-log';
import { type FleetEvent, type NewEvent, matchesFilter } from '../../../events/event-types';
import { EventTail } from '../../../events/tail';
import { EventWriter } from '../../../events/writer';
import type { AlarmRecord } from '../../../twins/behaviours';
import type { JobProgress } from '../../../twins/job-plan';
import type { OperationRecord } from '../../../twins/operations';
import type { DatapointDoc } from '../../../inventory/documents';

const op = (over: Partial<OperationRecord>): OperationRecord =>
  ({
    id: 'op-1',
    org: 'o',
    deviceId: 'd1',
    name: 'REBOOT_EQUIPMENT',
    delivery: 'push',
    requestedBy: 'key:k',
    createdAt: 1,
    updatedAt: 5,
    status: 'QUEUED',
    resultCode: null,
    resultDescription: null,
    attempts: [],
    ...over,
  }) as unknown as OperationRecord;

const alarm = (over: Partial<AlarmRecord>): AlarmRecord => ({
  name: 'OVERLOAD',
  severity: 'MAJOR',
  status: 'ACTIVE',
  message: 'too much',
  acknowledged: false,
  acknowledgedBy: null,
  acknowledgedAt: null,
  firstRaisedAt: 10,
  lastRaisedAt: 10,
  reRaises: 0,
  clearedAt: null,
  clearedBy: null,
  clearableByHand: true,
  rev: 1,
  ...over,
});

describe('what a write stands for', () => {
  it('an operation: requested, started once it had an attempt, ended once final, each keyed', () => {
    const attempt = [{ attempt: 1, startedAt: 3 }] as unknown as OperationRecord['attempts'];
    expect(operationEvents(op({})).map((e) => e.type)).toEqual(['operation.requested']);
    expect(
      operationEvents(op({ status: 'DELIVERED', attempts: attempt })).map((e) => [e.type, e.at]),
    ).toEqual([
      ['operation.requested', 1],
      ['operation.started', 3],
    ]);
    const done = op({
      status: 'SUCCESSFUL',
      resultCode: 'SUCCESSFUL',
      attempts: attempt,
      finishedAt: 9,
    } as never);
    const events = operationEvents(done);
    expect(events.map((e) => e.key)).toEqual(['op/op-1/requested', 'op/op-1/started', 'op/op-1/ended']);
    expect(events[2]).toMatchObject({
      type: 'operation.ended',
      at: 9,
      body: { status: 'SUCCESSFUL', attempts: 1 },
    });
  });

  it('a snapshot: status and connectivity changes, desired state settled', () => {
    expect(snapshotEvents('d1', { status: 'OK' }, { status: 'OK' }, 1)).toEqual([]);
    expect(
      snapshotEvents('d1', { status: 'OK' }, { status: 'OFFLINE' }, 1).map((e) => [e.type, e.body]),
    ).toEqual([
      ['device.status', { from: 'OK', to: 'OFFLINE' }],
      ['device.connectivity', { online: false }],
    ]);
    expect(snapshotEvents('d1', undefined, { status: 'NO_DATA', version: 7 }, 1)).toEqual([
      {
        type: 'device.status',
        deviceId: 'd1',
        at: 1,
        body: { from: null, to: 'NO_DATA' },
        key: 'snap/d1/7/status',
      },
    ]);
    const pending = { status: 'PENDING' as const, version: 2, reason: null };
    const synced = { status: 'IN_SYNC' as const, version: 2, reason: null };
    expect(snapshotEvents('d1', { desired: pending }, { desired: synced }, 1).map((e) => e.type)).toEqual([
      'desired.synced',
    ]);
    expect(snapshotEvents('d1', { desired: synced }, { desired: synced }, 1)).toEqual([]);
    const failed = { status: 'FAILED' as const, version: 3, reason: 'refused' };
    expect(snapshotEvents('d1', { desired: synced }, { desired: failed }, 1)[0]).toMatchObject({
      type: 'desired.failed',
      body: { version: 3, reason: 'refused' },
    });
  });

  it('an alarm: its last raise, its acknowledgement, its clearing, keyed by when each happened', () => {
    expect(alarmEvents('d1', alarm({})).map((e) => e.key)).toEqual(['alarm/d1/OVERLOAD/raised/10/0']);
    expect(alarmEvents('d1', alarm({ reRaises: 1, lastRaisedAt: 15 }))[0]!.key).toBe(
      'alarm/d1/OVERLOAD/raised/15/1',
    );
    const acked = alarm({ acknowledged: true, acknowledgedBy: 'u', acknowledgedAt: 20 });
    expect(alarmEvents('d1', acked)[1]).toMatchObject({
      type: 'alarm.acknowledged',
      at: 20,
      body: { by: 'u' },
    });
    const cleared = alarmEvents('d1', { ...acked, status: 'CLEARED', clearedAt: 30, clearedBy: 'twin' });
    expect(cleared.map((e) => e.type)).toEqual(['alarm.raised', 'alarm.acknowledged', 'alarm.cleared']);
    expect(cleared[2]).toMatchObject({ at: 30, key: 'alarm/d1/OVERLOAD/cleared/30', body: { by: 'twin' } });
  });

  it('a job: progress every time, its end keyed', () => {
    const p = { status: 'RUNNING', total: 3, counts: {}, wave: 0 } as unknown as JobProgress;
    expect(jobEvents('j', p, 1).map((e) => e.type)).toEqual(['job.progress']);
    const done = { ...p, status: 'COMPLETED' } as JobProgress;
    expect(jobEvents('j', done, 2).map((e) => [e.type, e.key])).toEqual([
      ['job.progress', undefined],
      ['job.ended', 'job/j/ended'],
    ]);
  });
});

describe('the tail', () => {
  const ev = (seq: number): FleetEvent => ({
    id: String(seq),
    seq,
    org: 'o',
    type: 'device.changed',
    at: 0,
    body: {},
  });
  const source = (events: FleetEvent[]) => ({
    readAfter: async (_org: string, after: number, limit: number) =>
      events
        .filter((e) => e.seq > after)
        .sort((a, b) => a.seq - b.seq)
        .slice(0, limit),
    counter: async () => Math.max(0, ...events.map((e) => e.seq)),
  });

  it('reads in order from where it stands, and goes on from there', async () => {
    const log = [ev(1000), ev(1001), ev(2000)];
    const tail = await EventTail.start(source(log), 'o', 0);
    expect((await tail.advance()).map((e) => e.seq)).toEqual([1000, 1001, 2000]);
    expect(await tail.advance()).toEqual([]);
    log.push(ev(3000), ev(3001));
    expect((await tail.advance(1)).map((e) => e.seq)).toEqual([3000]);
    expect((await tail.advance()).map((e) => e.seq)).toEqual([3001]);
    expect(tail.position).toBe(3001);
  });

  it('stands at the end of the last batch once it has read everything, so it reads that batch no more', async () => {
    const log = [ev(1000), ev(1001)];
    const reads: number[] = [];
    const src = {
      ...source(log),
      readAfter: async (org: string, after: number, limit: number) => {
        reads.push(after);
        return source(log).readAfter(org, after, limit);
      },
      lastIdWith: (seq: number) => Math.floor(seq / 1000) * 1000 + 999,
    };
    const tail = await EventTail.start(src, 'o', 0);
    expect((await tail.advance()).map((e) => e.seq)).toEqual([1000, 1001]);
    expect(tail.position).toBe(1999);
    log.push(ev(2000));
    expect((await tail.advance(1)).map((e) => e.seq)).toEqual([2000]);
    // Asked for one and got one: it may not have read everything, so it stands on the event.
    expect(tail.position).toBe(2000);
    expect(reads).toEqual([0, 1999]);
  });

  it('starts at the end of the log unless told where', async () => {
    expect((await EventTail.start(source([ev(1000), ev(1001)]), 'o')).position).toBe(1001);
    expect((await EventTail.start(source([]), 'o')).position).toBe(0);
    expect((await EventTail.start(source([ev(1000)]), 'o', 5)).position).toBe(5);
  });

  it('reads a long backlog in several reads', async () => {
    const log = Array.from({ length: 1_234 }, (_, i) => ev(1_000 + i));
    const tail = await EventTail.start(source(log), 'o', 0);
    expect(await tail.advance()).toHaveLength(1_234);
  });
});

describe('the writer', () => {
  it('groups appends made while a write is under way, per organization, in order', async () => {
    const writes: { org: string; types: string[] }[] = [];
    let release!: () => void;
    const first = new Promise<void>((r) => (release = r));
    let calls = 0;
    const writer = new EventWriter({
      append: async (org, events) => {
        if (calls++ === 0) await first;
        writes.push({ org, types: events.map((e) => e.type) });
        return [];
      },
    });
    const ev = (type: NewEvent['type']): NewEvent => ({ type, at: 1, body: {} });
    const a = writer.append('o1', [ev('device.changed')]);
    const b = writer.append('o1', [ev('device.status')]);
    const c = writer.append('o2', [ev('alarm.raised')]);
    const d = writer.append('o1', [ev('alarm.cleared')]);
    release();
    await Promise.all([a, b, c, d]);
    expect(writes).toEqual([
      { org: 'o1', types: ['device.changed'] },
      { org: 'o1', types: ['device.status', 'alarm.cleared'] },
      { org: 'o2', types: ['alarm.raised'] },
    ]);
  });

  it('skips keys it logged, without asking the store', async () => {
    const writes: string[][] = [];
    const writer = new EventWriter({
      append: async (_org, events) => {
        writes.push(events.map((e) => e.key ?? '-'));
        return [];
      },
    });
    const ev = (key?: string): NewEvent => ({
      type: 'device.changed',
      at: 1,
      body: {},
      ...(key ? { key } : {}),
    });
    await writer.append('o', [ev('a'), ev()]);
    await writer.append('o', [ev('a'), ev('b')]);
    await writer.append('o', [ev('a')]);
    await writer.append('other', [ev('a')]);
    expect(writes).toEqual([['a', '-'], ['b'], ['a']]);
  });

  it("asks the store only about keys a caller may have logged before, not a fresh record's", async () => {
    const asked: string[][] = [];
    let release!: () => void;
    const first = new Promise<void>((r) => (release = r));
    let calls = 0;
    const writer = new EventWriter({
      append: async (_org, _events, options) => {
        if (calls++ === 0) await first;
        const check = options?.checkKeys;
        asked.push(check instanceof Set ? [...check].sort() : [String(check)]);
        return [];
      },
    });
    const ev = (key: string): NewEvent => ({ type: 'operation.requested', at: 1, body: {}, key });
    const a = writer.append('o', [ev('op1/requested')], { fresh: true });
    // Grouped with a fresh append: only the other caller's keys are checked.
    const b = writer.append('o', [ev('op2/requested'), ev('op2/ended')]);
    const c = writer.append('o', [ev('op3/requested')], { fresh: true });
    release();
    await Promise.all([a, b, c]);
    expect(asked).toEqual([[], ['op2/ended', 'op2/requested']]);
  });

  it('fails every caller of a failed write, and writes the next ones', async () => {
    let fail = true;
    const writer = new EventWriter({
      append: async () => {
        if (fail) throw new Error('store down');
        return [];
      },
    });
    await expect(writer.append('o', [{ type: 'device.changed', at: 1, body: {} }])).rejects.toThrow(
      'store down',
    );
    fail = false;
    await expect(writer.append('o', [{ type: 'device.changed', at: 1, body: {} }])).resolves.toBeUndefined();
  });
});

describe('datapoint batches and filters', () => {
  const point = (org: string, deviceId: string, ds: string, at: number): DatapointDoc => ({
    org,
    deviceId,
    ds,
    feed: 'default',
    at,
    receivedAt: at,
    value: at,
  });

  it('logs only the datastreams some forwarder wants, per organization, 500 points an event', () => {
    const points = [
      point('a', 'd1', 'temp', 1),
      point('a', 'd1', 'hum', 2),
      point('b', 'd2', 'temp', 3),
      point('c', 'd3', 'x', 4),
      ...Array.from({ length: 600 }, (_, i) => point('c', `d${i % 2}`, 'y', 10 + i)),
    ];
    const out = pointEvents(
      points,
      new Map<string, Set<string> | 'all'>([
        ['a', new Set(['temp'])],
        ['c', 'all'],
      ]),
      99,
    );
    expect([...out.keys()]).toEqual(['a', 'c']);
    expect(out.get('a')).toEqual([
      {
        type: 'datapoints',
        deviceId: 'd1',
        at: 99,
        body: { points: [{ deviceId: 'd1', datastreamId: 'temp', feed: 'default', at: 1, value: 1 }] },
      },
    ]);
    const c = out.get('c')!;
    expect(c.map((e) => (e.body.points as unknown[]).length)).toEqual([500, 101]);
    expect(c[0]!.deviceId).toBeUndefined();
  });

  it('filters by type, device and time; datapoints only when asked for', () => {
    const e = (type: FleetEvent['type'], deviceId?: string, at = 5): FleetEvent => ({
      id: '1',
      seq: 1,
      org: 'o',
      type,
      ...(deviceId ? { deviceId } : {}),
      at,
      body: {},
    });
    expect(matchesFilter(e('alarm.raised', 'd1'), {})).toBe(true);
    expect(matchesFilter(e('datapoints'), {})).toBe(false);
    expect(matchesFilter(e('datapoints'), { types: ['datapoints'] })).toBe(true);
    expect(matchesFilter(e('alarm.raised', 'd1'), { types: ['alarm.cleared'] })).toBe(false);
    expect(matchesFilter(e('alarm.raised', 'd1'), { deviceIds: ['d2'] })).toBe(false);
    expect(matchesFilter(e('job.ended'), { deviceIds: ['d2'] })).toBe(false);
    expect(matchesFilter(e('alarm.raised', 'd1', 4), { since: 5 })).toBe(false);
  });
});
