// The worker's activities, built from their dependencies so tests can pass real or other services.
import { alarmEvents, operationEvents, snapshotEvents } from '../events/derive';
import type { NewEvent } from '../events/event-types';
import type { EventWriter } from '../events/writer';
import type { EventRepository } from '../inventory/events.repo';
import type { AlarmRepository, AlarmWrite } from '../inventory/alarms.repo';
import type { DatapointRepository } from '../inventory/datapoints.repo';
import type { DeviceRepository } from '../inventory/devices.repo';
import type { OperationRepository } from '../inventory/operations.repo';
import { type FirstPushResult, afterFirstPush } from '../twins/operation-flow';
import type { OperationRecord } from '../twins/operations';
import type { TwinSnapshot } from '../twins/twin-core';
import { type DeliveryRequest, deliverOperation } from './delivery';
import { type JobActivityDeps, createJobActivities } from './jobs';

export interface ActivityDeps {
  readonly devices: DeviceRepository;
  readonly operations: OperationRepository;
  readonly datapoints: DatapointRepository;
  /** Jobs request operations through the operations service; a worker without them runs no job. */
  readonly jobs?: JobActivityDeps;
  readonly alarms: AlarmRepository;
  /** Sends a device listening on MQTT its waiting operations now (set where this process runs the broker). */
  readonly liveDelivery?: (org: string, deviceId: string) => Promise<void>;
  /** The fleet event log: what the writes below stand for (status changes, alarms, operations). */
  readonly events: EventWriter;
  /** The event log's retention (the worker's repository). */
  readonly eventLog?: Pick<EventRepository, 'deleteBefore'>;
}

/** How the twin reaches its device for an operation a reaction requests (the inventory's transport). */
export interface DeviceDelivery {
  readonly http?: { readonly operationUrl: string };
  readonly platformKey?: string;
  readonly sleepy?: boolean;
  readonly mqtt?: boolean;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createJobActivities(deps.jobs),
    /** Publishes a twin's snapshot to the read model (the twin publishes one at a time, in order). */
    async publishTwinSnapshot(org: string, deviceId: string, snapshot: TwinSnapshot): Promise<void> {
      // Logged before it is written (keyed by the snapshot's version): a crash between the two loses nothing.
      const before = await deps.devices.twinFacts(org, deviceId);
      if (before)
        await deps.events.append(org, snapshotEvents(deviceId, before, snapshot, snapshot.updatedAt));
      await deps.devices.writeTwinSnapshot(org, deviceId, snapshot);
    },
    /** Writes an operation's record to the read model (its workflow writes one revision at a time). */
    async writeOperationRecord(record: OperationRecord): Promise<void> {
      await deps.operations.write(record);
      await deps.events.append(record.org, operationEvents(record));
    },
    deliverOperation,
    /** The first record of an operation the twin accepted (never replaces a later one). */
    async admitOperationRecord(record: OperationRecord): Promise<void> {
      // Inserted now: no earlier try logged its events (they are logged after the record), so no key lookups.
      const inserted = await deps.operations.insertFirst(record);
      await deps.events.append(record.org, operationEvents(record), { fresh: inserted });
    },
    /**
     * The twin's first push of an operation whose turn came at once: one try at the device (a transport failure
     * answers `unreachable` at once; the operation's workflow retries), then one write: the final record when
     * the device answered for good, else the first. Answers the device's outcome and the time the records took
     * from it: the twin works the same records out from them (`afterFirstPush` is pure), so its history keeps
     * the outcome alone, not the records.
     */
    async pushOperationOnce(first: OperationRecord, delivery: DeliveryRequest): Promise<FirstPushResult> {
      const outcome = await deliverOperation({ ...delivery, once: true });
      const at = Date.now();
      const pushed = afterFirstPush(first, outcome, [], at);
      const record = pushed.next === 'ended' ? pushed.records.at(-1)! : first;
      const inserted = await deps.operations.insertOrReplace(record);
      await deps.events.append(record.org, operationEvents(record), { fresh: inserted });
      return { outcome, at };
    },
    /** How many operations wait for the device's next poll (the twin writes one at a time, in order). */
    async writePendingMarker(org: string, deviceId: string, waiting: number): Promise<void> {
      await deps.operations.writePendingMarker(org, deviceId, waiting, Date.now());
    },
    /** A twin's changed alarms and new events (the twin writes one batch at a time, in order). */
    async writeAlarms(write: AlarmWrite): Promise<void> {
      await deps.alarms.write(write);
      await deps.events.append(write.org, twinAlarmEvents(write));
    },
    /** The device's transport, for an operation a reaction requests; null when the record is gone. */
    async deviceDelivery(org: string, deviceId: string): Promise<DeviceDelivery | null> {
      const doc = await deps.devices.get(org, deviceId);
      if (!doc) return null;
      const t = doc.transport;
      return {
        ...(t.http ? { http: { operationUrl: t.http.operationUrl } } : {}),
        ...(t.http?.apiKey ? { platformKey: t.http.apiKey } : {}),
        ...(t.sleepy ? { sleepy: true } : {}),
        ...(t.mqtt ? { mqtt: true } : {}),
      };
    },
    /**
     * A device listening on MQTT gets an operation its twin queued at once. Returns without waiting: the hand-over
     * asks the twin, which must not be held up by its own activity. Without a broker here: at its next subscribe.
     */
    async kickLiveDelivery(org: string, deviceId: string): Promise<void> {
      if (deps.liveDelivery) void deps.liveDelivery(org, deviceId);
    },
    /** Deletes datapoint history that ended at or before `cutoff` (ms); returns how many documents went. */
    async deleteExpiredDatapoints(cutoff: number): Promise<number> {
      return deps.datapoints.deleteEndedBefore(cutoff);
    },
    /** Deletes the events of every organization that happened before `cutoff` (ms); returns how many went. */
    async deleteExpiredEvents(cutoff: number): Promise<number> {
      return deps.eventLog ? deps.eventLog.deleteBefore(cutoff) : 0;
    },
  };
}

/** What a twin's alarm write stands for: alarms raised, acknowledged and cleared, and the reactions' own events. */
function twinAlarmEvents(w: AlarmWrite): NewEvent[] {
  const events = w.alarms.flatMap((a) => alarmEvents(w.deviceId, a));
  for (const e of w.events)
    events.push({
      type: 'twin.event',
      deviceId: w.deviceId,
      at: e.at,
      body: { name: e.name, id: e.id, data: e.data },
      key: `twin-event/${w.deviceId}/${e.id}`,
    });
  return events;
}
