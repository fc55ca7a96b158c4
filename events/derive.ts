// Which events a write stands for, from what was stored before and what is written now. Pure: the repositories
// call these with the previous document they read or replaced, so no workflow needs to know of the event log.
import type { AlarmRecord } from '../twins/behaviours';
import type { SyncStatus } from '../twins/desired';
import { type JobProgress, isJobFinal } from '../twins/job-plan';
import { type OperationRecord, type OperationStatus, isFinal } from '../twins/operations';
import type { NewEvent } from './event-types';

const NOT_STARTED: ReadonlySet<OperationStatus> = new Set(['QUEUED', 'WAITING_FOR_CONNECTION']);

/** An operation's record replaced `before` (undefined: it is new): requested, started, ended. */
export function operationEvents(
  before: { status: OperationStatus } | undefined,
  rec: OperationRecord,
): NewEvent[] {
  const events: NewEvent[] = [];
  const base = { deviceId: rec.deviceId, at: rec.updatedAt };
  const summary = { operationId: rec.id, name: rec.name, delivery: rec.delivery };
  if (before === undefined)
    events.push({
      ...base,
      type: 'operation.requested',
      at: rec.createdAt,
      body: { ...summary, requestedBy: rec.requestedBy },
      key: `op/${rec.id}/requested`,
    });
  const wasStarted = before !== undefined && !NOT_STARTED.has(before.status);
  if (!wasStarted && !NOT_STARTED.has(rec.status) && rec.attempts.length > 0)
    events.push({ ...base, type: 'operation.started', body: summary, key: `op/${rec.id}/started` });
  if (isFinal(rec.status) && !(before && isFinal(before.status)))
    events.push({
      ...base,
      type: 'operation.ended',
      body: {
        ...summary,
        status: rec.status,
        resultCode: rec.resultCode,
        resultDescription: rec.resultDescription,
        attempts: rec.attempts.length,
      },
      key: `op/${rec.id}/ended`,
    });
  return events;
}

/** What a twin's snapshot says that the log cares about. */
export interface SnapshotFacts {
  readonly status?: string;
  readonly desired?: {
    readonly status: SyncStatus;
    readonly version: number;
    readonly reason: string | null;
  } | null;
}

const OFFLINE = 'OFFLINE';

/** A twin's snapshot replaced `before`: status, connectivity and desired-state sync changes. */
export function snapshotEvents(
  deviceId: string,
  before: SnapshotFacts | undefined,
  after: SnapshotFacts,
  at: number,
): NewEvent[] {
  const events: NewEvent[] = [];
  const from = before?.status;
  const to = after.status;
  if (to !== undefined && from !== to) {
    events.push({ type: 'device.status', deviceId, at, body: { from: from ?? null, to } });
    if (to === OFFLINE || from === OFFLINE)
      events.push({ type: 'device.connectivity', deviceId, at, body: { online: to !== OFFLINE } });
  }
  const d = after.desired;
  const was = before?.desired;
  if (
    d &&
    (d.status === 'IN_SYNC' || d.status === 'FAILED') &&
    (was?.status !== d.status || was.version !== d.version)
  )
    events.push({
      type: d.status === 'IN_SYNC' ? 'desired.synced' : 'desired.failed',
      deviceId,
      at,
      body: { version: d.version, ...(d.status === 'FAILED' ? { reason: d.reason } : {}) },
      key: `desired/${deviceId}/${d.version}/${d.status}`,
    });
  return events;
}

/** A twin's changed alarm replaced `before`: raised (again), acknowledged, cleared. */
export function alarmEvents(deviceId: string, before: AlarmRecord | undefined, a: AlarmRecord): NewEvent[] {
  const events: NewEvent[] = [];
  const body = { alarm: a.name, severity: a.severity, message: a.message };
  const key = (kind: string) => `alarm/${deviceId}/${a.name}/${a.rev}/${kind}`;
  const raised =
    a.status === 'ACTIVE' &&
    (before === undefined || before.status !== 'ACTIVE' || a.reRaises > before.reRaises);
  if (raised)
    events.push({
      type: 'alarm.raised',
      deviceId,
      at: a.lastRaisedAt,
      body: { ...body, reRaises: a.reRaises },
      key: key('raised'),
    });
  if (a.acknowledged && !(before?.acknowledged ?? false))
    events.push({
      type: 'alarm.acknowledged',
      deviceId,
      at: a.acknowledgedAt ?? a.lastRaisedAt,
      body: { ...body, by: a.acknowledgedBy },
      key: key('acknowledged'),
    });
  if (a.status === 'CLEARED' && before?.status !== 'CLEARED')
    events.push({
      type: 'alarm.cleared',
      deviceId,
      at: a.clearedAt ?? a.lastRaisedAt,
      body: { ...body, by: a.clearedBy },
      key: key('cleared'),
    });
  return events;
}

/** A job's progress was written: progress always, its end once. */
export function jobEvents(
  jobId: string,
  before: { status: string } | undefined,
  p: JobProgress,
  at: number,
): NewEvent[] {
  const body = {
    jobId,
    status: p.status,
    total: p.total,
    counts: p.counts,
    wave: p.wave,
    ...(p.reason ? { reason: p.reason } : {}),
  };
  const events: NewEvent[] = [{ type: 'job.progress', at, body }];
  if (isJobFinal(p.status) && before?.status !== p.status)
    events.push({ type: 'job.ended', at, body, key: `job/${jobId}/ended` });
  return events;
}
