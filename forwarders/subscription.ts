// Which events a forwarder takes, and what of them: pure, so the activity and the tests share one rule.
import { DATAPOINTS, type FleetEvent } from '../events/event-types';
import type { Subscription } from '../inventory/forwarders.repo';

interface Point {
  readonly deviceId?: unknown;
  readonly datastreamId?: unknown;
}

/**
 * The event as the forwarder sends it, or undefined when the subscription does not take it. A datapoints batch
 * keeps only the points of the chosen datastreams and devices (none left: not sent).
 */
export function selectEvent(event: FleetEvent, sub: Subscription): FleetEvent | undefined {
  const types = sub.types ?? [];
  const streams = sub.datastreams ?? [];
  if (event.type === DATAPOINTS) {
    if (streams.length === 0 && !types.includes(DATAPOINTS)) return undefined;
    return selectPoints(event, sub);
  }
  if (types.length > 0 ? !types.includes(event.type) : streams.length > 0) return undefined;
  if (sub.deviceIds && (event.deviceId === undefined || !sub.deviceIds.includes(event.deviceId)))
    return undefined;
  return event;
}

function selectPoints(event: FleetEvent, sub: Subscription): FleetEvent | undefined {
  const points = Array.isArray(event.body.points) ? (event.body.points as Point[]) : [];
  const streams = sub.datastreams && sub.datastreams.length > 0 ? new Set(sub.datastreams) : undefined;
  const devices = sub.deviceIds ? new Set(sub.deviceIds) : undefined;
  const kept = points.filter(
    (p) => (!streams || streams.has(String(p.datastreamId))) && (!devices || devices.has(String(p.deviceId))),
  );
  if (kept.length === 0) return undefined;
  return kept.length === points.length ? event : { ...event, body: { ...event.body, points: kept } };
}

/** The key that orders deliveries: one device's events go one after another, in log order. */
export function orderingKey(event: FleetEvent): string {
  if (event.deviceId !== undefined) return event.deviceId;
  const points = Array.isArray(event.body.points) ? (event.body.points as Point[]) : [];
  const first = points[0]?.deviceId;
  return typeof first === 'string' && points.every((p) => p.deviceId === first) ? first : '';
}
