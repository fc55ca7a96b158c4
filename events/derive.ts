// Which events a write stands for. Pure, and no workflow needs to know of the event log: operations, alarms and
// jobs say it from the record written (each event keyed, so writing it again logs nothing twice); a twin's status
// and connectivity from the snapshot stored before and the one written now.
import type { AlarmRecord } from '../twins/behaviours';
import type { SyncStatus } from '../twins/desired';
import { type JobProgress, isJobFinal } from '../twins/job-plan';
import { type OperationRecord, isFinal } from '../twins/operations';
import type { NewEvent } from './event-types';

/**
 * What an operation's record says happened: requested, started once it had an attempt, ended once final. Each
 * event is keyed, so a writer logs everything the record implies at every write and the log keeps each once:
 * a write whose events were lost to a crash has them logged by the next try or the next write.
 */
export function operationEvents(rec: OperationRecord): NewEvent[] {
  const summary = { operationId: rec.id, name: rec.name, delivery: rec.delivery };
  const events: NewEvent[] = [
    {
      type: 'operation.requested',
      deviceId: rec.deviceId,
      at: rec.createdAt,
      body: { ...summary, requestedBy: rec.requestedBy },
      key: `op/${rec.id}/requested`,
    },
  ];
  const first = rec.attempts[0];
  if (first)
    events.push({
      type: 'operation.started',
      deviceId: rec.deviceId,
      at: first.startedAt,
      body: summary,
      key: `op/${rec.id}/started`,
    });
  if (isFinal(rec.status))
    events.push({
      type: 'operation.ended',
      deviceId: rec.deviceId,
      at: rec.finishedAt ?? rec.updatedAt,
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
  after: SnapshotFacts & { readonly version?: number },
  at: number,
): NewEvent[] {
  const events: NewEvent[] = [];
  const from = before?.status;
  const to = after.status;
  // Keyed by the snapshot's version: a snapshot written again after a crash logs nothing twice.
  const key = (kind: string) =>
    after.version !== undefined ? { key: `snap/${deviceId}/${after.version}/${kind}` } : {};
  if (to !== undefined && from !== to) {
    events.push({ type: 'device.status', deviceId, at, body: { from: from ?? null, to }, ...key('status') });
    if (to === OFFLINE || from === OFFLINE)
      events.push({
        type: 'device.connectivity',
        deviceId,
        at,
        body: { online: to !== OFFLINE },
        ...key('connectivity'),
      });
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

/**
 * What an alarm's record says happened: its last raise, its acknowledgement, its clearing. Keyed by when each
 * happened, so the log keeps each once however often the record is written.
 */
export function alarmEvents(deviceId: string, a: AlarmRecord): NewEvent[] {
  const body = { alarm: a.name, severity: a.severity, message: a.message };
  const base = `alarm/${deviceId}/${a.name}`;
  const events: NewEvent[] = [
    {
      type: 'alarm.raised',
      deviceId,
      at: a.lastRaisedAt,
      body: { ...body, reRaises: a.reRaises },
      key: `${base}/raised/${a.lastRaisedAt}/${a.reRaises}`,
    },
  ];
  if (a.acknowledged)
    events.push({
      type: 'alarm.acknowledged',
      deviceId,
      at: a.acknowledgedAt ?? a.lastRaisedAt,
      body: { ...body, by: a.acknowledgedBy },
      key: `${base}/acknowledged/${a.acknowledgedAt ?? a.lastRaisedAt}`,
    });
  if (a.status === 'CLEARED')
    events.push({
      type: 'alarm.cleared',
      deviceId,
      at: a.clearedAt ?? a.lastRaisedAt,
      body: { ...body, by: a.clearedBy },
      key: `${base}/cleared/${a.clearedAt ?? a.lastRaisedAt}`,
    });
  return events;
}

/** A job's progress was written: progress every time, its end once (keyed). */
export function jobEvents(jobId: string, p: JobProgress, at: number): NewEvent[] {
  const body = {
    jobId,
    status: p.status,
    total: p.total,
    counts: p.counts,
    wave: p.wave,
    ...(p.reason ? { reason: p.reason } : {}),
  };
  const events: NewEvent[] = [{ type: 'job.progress', at, body }];
  if (isJobFinal(p.status)) events.push({ type: 'job.ended', at, body, key: `job/${jobId}/ended` });
  return events;
}
