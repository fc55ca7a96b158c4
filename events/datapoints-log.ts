// Turns ingested points into `datapoints` events for the forwarders that subscribe to their datastreams: only
// organizations with such a forwarder, only the datastreams they chose, in batches, never one event per point.
import type { DatapointDoc } from '../inventory/documents';
import { fromStoredValue } from '../inventory/storable';
import type { NewEvent } from './event-types';

/** Points one `datapoints` event carries at most. */
export const POINTS_PER_EVENT = 500;

/** Per organization, the datastreams some forwarder wants ('all': a forwarder wants every one). */
export type PointInterest = ReadonlyMap<string, ReadonlySet<string> | 'all'>;

/** The events that log the points the interest asks for, per organization, in the order the points came. */
export function pointEvents(
  points: readonly DatapointDoc[],
  interest: PointInterest,
  at: number,
): Map<string, NewEvent[]> {
  const byOrg = new Map<string, DatapointDoc[]>();
  for (const p of points) {
    const wanted = interest.get(p.org);
    if (!wanted || (wanted !== 'all' && !wanted.has(p.ds))) continue;
    const list = byOrg.get(p.org);
    if (list) list.push(p);
    else byOrg.set(p.org, [p]);
  }
  const out = new Map<string, NewEvent[]>();
  for (const [org, list] of byOrg) {
    const events: NewEvent[] = [];
    for (let i = 0; i < list.length; i += POINTS_PER_EVENT) {
      const slice = list.slice(i, i + POINTS_PER_EVENT);
      const devices = new Set(slice.map((p) => p.deviceId));
      events.push({
        type: 'datapoints',
        ...(devices.size === 1 ? { deviceId: slice[0]!.deviceId } : {}),
        at,
        body: {
          points: slice.map((p) => ({
            deviceId: p.deviceId,
            datastreamId: p.ds,
            ...(p.feed ? { feed: p.feed } : {}),
            at: p.at,
            value: fromStoredValue(p),
          })),
        },
      });
    }
    out.set(org, events);
  }
  return out;
}

/**
 * Keeps the interest fresh for `ttlMs` at a time and logs what it asks for. A read of the interest that fails
 * keeps the last one known (a forwarder added meanwhile is seen at the next read).
 */
export function createPointLogger(deps: {
  readonly interest: () => Promise<PointInterest>;
  readonly append: (org: string, events: readonly NewEvent[]) => Promise<unknown>;
  readonly now: () => number;
  readonly ttlMs?: number;
}): (points: readonly DatapointDoc[]) => Promise<void> {
  let known: PointInterest = new Map();
  let readAt = -Infinity;
  const ttl = deps.ttlMs ?? 5_000;
  return async (points) => {
    if (deps.now() - readAt >= ttl) {
      known = await deps.interest();
      readAt = deps.now();
    }
    if (known.size === 0) return;
    for (const [org, events] of pointEvents(points, known, deps.now())) await deps.append(org, events);
  };
}
