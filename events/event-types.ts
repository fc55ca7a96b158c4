// The fleet event log's vocabulary: what can happen, and how each event looks on the API, streams and forwarders.

/** Every event type, grouped by what it is about. */
export const EVENT_TYPES = [
  'device.provisioned',
  'device.changed',
  'device.decommissioned',
  'device.status',
  'device.connectivity',
  'alarm.raised',
  'alarm.acknowledged',
  'alarm.cleared',
  'operation.requested',
  'operation.started',
  'operation.ended',
  'job.progress',
  'job.ended',
  'desired.synced',
  'desired.failed',
  'twin.event',
  'datapoints',
  'forwarder.paused',
  'forwarder.test',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

const TYPE_SET: ReadonlySet<string> = new Set(EVENT_TYPES);
export const isEventType = (value: string): value is EventType => TYPE_SET.has(value);

/** Batches of datapoints: logged for forwarders that subscribe to datastreams; a reader gets them only by asking. */
export const DATAPOINTS: EventType = 'datapoints';

/** An event as a writer hands it to the log (the log gives it its id). */
export interface NewEvent {
  readonly type: EventType;
  readonly deviceId?: string;
  /** When it happened (ms since epoch). */
  readonly at: number;
  readonly body: Readonly<Record<string, unknown>>;
  /**
   * Same key, same event: a retried writer (an activity run again after its worker died) does not log it twice.
   * Writers that never retry leave it out.
   */
  readonly key?: string;
}

/** An event as readers see it: `id` orders an organization's events (a decimal sequence number). */
export interface FleetEvent {
  readonly id: string;
  readonly seq: number;
  readonly org: string;
  readonly type: EventType;
  readonly deviceId?: string;
  readonly at: number;
  readonly body: Readonly<Record<string, unknown>>;
}

/** What a reader asks of the log; every field narrows. */
export interface EventFilter {
  readonly types?: readonly EventType[];
  readonly deviceIds?: readonly string[];
  /** Events at or after this time (ms since epoch). */
  readonly since?: number;
}

/** True when the event passes the filter (the stream's check; the store runs the same one as a query). */
export function matchesFilter(event: FleetEvent, filter: EventFilter): boolean {
  if (filter.types && filter.types.length > 0) {
    if (!filter.types.includes(event.type)) return false;
  } else if (event.type === DATAPOINTS) return false;
  if (filter.deviceIds && (event.deviceId === undefined || !filter.deviceIds.includes(event.deviceId)))
    return false;
  if (filter.since !== undefined && event.at < filter.since) return false;
  return true;
}
