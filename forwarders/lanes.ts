// Delivers a batch of events: one lane per device (in log order, one at a time), lanes side by side. A refused
// event becomes a dead letter and its lane goes on; an event worth another try stops its lane and fails the batch.
import type { FleetEvent } from '../events/event-types';
import type { ForwarderDoc, ForwarderRepository } from '../inventory/forwarders.repo';
import { deliver, type DeliveryResult, type MqttClients } from './deliver';
import type { BodyShaper } from './shaper';
import { orderingKey } from './subscription';

export interface ForwardingTools {
  readonly forwarders: ForwarderRepository;
  readonly shaper: BodyShaper;
  readonly mqtt: MqttClients;
  readonly now: () => number;
  /** One request's time limit (ms). */
  readonly requestTimeoutMs: number;
  /** Lanes delivered at once. */
  readonly lanes: number;
}

/** Same event, same key, however often it is sent. */
export const idempotencyKeyOf = (forwarderId: string, seq: number): string => `${forwarderId}-${seq}`;

/** Shapes and sends one event (the round's and the replay's path). */
export async function sendEvent(
  fwd: ForwarderDoc,
  event: FleetEvent,
  tools: ForwardingTools,
  idempotencyKey = idempotencyKeyOf(fwd.id, event.seq),
): Promise<DeliveryResult> {
  const shaped = tools.shaper.shape(fwd, event);
  if (!shaped.ok) return { kind: 'refused', status: 0, error: shaped.error, ms: 0 };
  return deliver(
    fwd.destination,
    { forwarderId: fwd.id, idempotencyKey, event, body: shaped.body },
    { timeoutMs: tools.requestTimeoutMs, now: tools.now, mqtt: tools.mqtt },
  );
}

export async function deliverInLanes(
  fwd: ForwarderDoc,
  events: readonly FleetEvent[],
  tools: ForwardingTools,
  heartbeat: () => void,
): Promise<{ delivered: number; error?: string }> {
  const lanes = new Map<string, FleetEvent[]>();
  for (const e of events) {
    const key = orderingKey(e);
    const lane = lanes.get(key);
    if (lane) lane.push(e);
    else lanes.set(key, [e]);
  }
  let delivered = 0;
  let error: string | undefined;
  const runLane = async (lane: readonly FleetEvent[]) => {
    for (const event of lane) {
      if (error !== undefined) return;
      const result = await sendEvent(fwd, event, tools);
      heartbeat();
      if (result.kind === 'delivered') delivered++;
      else if (result.kind === 'refused')
        await tools.forwarders.addDeadLetter(fwd.org, fwd.id, event, result.error, tools.now());
      else {
        error = `event ${event.id}: ${result.error}`;
        return;
      }
    }
  };
  const queue = [...lanes.values()];
  const workers = Array.from({ length: Math.min(tools.lanes, queue.length) }, async () => {
    for (let lane = queue.shift(); lane; lane = queue.shift()) await runLane(lane);
  });
  await Promise.all(workers);
  return error !== undefined ? { delivered, error } : { delivered };
}
