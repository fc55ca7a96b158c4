// The operations service: request, read, cancel, answer and hand over operations, for every transport.
// North routes, south routes and the MQTT gateway all come here; it returns typed outcomes, never statuses.
import { randomUUID } from 'node:crypto';
import type { DeviceDirectory } from '../ingest/device-directory';
import type { DeviceRepository } from '../inventory/devices.repo';
import type { OperationRepository } from '../inventory/operations.repo';
import { checkOperation } from '../twins/operation-catalogue';
import { type ResponseEnvelope, toDeviceResponse } from '../twins/operation-envelopes';
import {
  OPERATION_DEFAULTS,
  OPERATION_ID_PATTERN,
  type OperationRecord,
  type OperationRequest,
  type OperationStatus,
  type RequestEnvelope,
  chooseDelivery,
  createOperationRecord,
  isFinal,
  normalizeParameters,
} from '../twins/operations';
import { type Outcome, RefusedError, accepted, refused } from '../twins/outcomes';
import { getTwinType } from '../twins/registry';
import type { OperationAdmission } from '../workflows/twin.messages';
import { PendingMarkerView } from './pending-markers';
import type { TwinGateway } from './twin-gateway';

/** What a caller asks for: the single-operation API's body, whatever transport it came by. */
export interface OperationOrder {
  readonly name: string;
  readonly parameters?: unknown;
  readonly delivery?: 'auto' | 'push' | 'pending';
  readonly timeoutMs?: number;
  readonly ttlMs?: number;
  readonly retries?: number;
  readonly retriesDelayMs?: number;
  readonly retryResultList?: readonly string[];
}

/** A record and whether the operation's workflow has ended (its record is then final for certain). */
export interface OperationView {
  readonly record: OperationRecord;
  readonly ended: boolean;
}

export type ResponseOutcome =
  | { readonly handed: true }
  | { readonly handed: false; readonly id: string; readonly status: OperationStatus };

export interface OperationsServiceDeps {
  readonly twins: TwinGateway;
  readonly operations: OperationRepository;
  readonly devices: DeviceRepository;
  readonly directory: DeviceDirectory;
  readonly now: () => number;
  readonly warn: (what: string, fields: Record<string, unknown>) => void;
}

/** Sends waiting operations to a device that listens on a live channel (MQTT), when one is attached. */
export type LiveDelivery = (org: string, deviceId: string) => Promise<void>;

/** The most pending operations one poll or one MQTT hand-over takes. */
const MAX_CLAIM = 100;

export class OperationsService {
  private liveDelivery: LiveDelivery | undefined;
  private readonly markers: PendingMarkerView;

  constructor(private readonly deps: OperationsServiceDeps) {
    this.markers = new PendingMarkerView(deps.operations);
  }

  /** The view of the pending markers: devices held, writers followed. */
  pendingCounters(): { devices: number; writers: number } {
    return this.markers.counters();
  }

  /** The MQTT gateway attaches here: operations queued for a listening device go out at once. */
  attachLiveDelivery(deliver: LiveDelivery): void {
    this.liveDelivery = deliver;
  }

  /**
   * Checks an operation against the device and its twin type, then hands it to the twin; answers its record. A job
   * passes its own id for each device, so a repeated request is recognised (by the twin, and by the store).
   */
  async request(
    org: string,
    actor: string,
    deviceId: string,
    order: OperationOrder,
    id: string = randomUUID(),
  ): Promise<Outcome<OperationRecord>> {
    const built = await this.build(org, actor, deviceId, order, id);
    if (!built.ok) return built;
    const { request, mqtt } = built.value;
    const admitted = await this.admit(request);
    if (!admitted.ok) return admitted;
    // The twin wrote the first record (or, for an operation it pushed and the device answered, the final one).
    const record = admitted.value.record ?? (await this.writeFirstRecord(request));
    // An MQTT device listening right now gets it at once; otherwise when it next subscribes.
    if (request.delivery === 'pending' && mqtt) void this.liveDelivery?.(org, deviceId);
    return accepted(record);
  }

  /** A twin that did not write the first record (a duplicate, or a run from before twins wrote it). */
  private async writeFirstRecord(request: OperationRequest): Promise<OperationRecord> {
    const record = createOperationRecord(request);
    try {
      await this.deps.operations.insertFirst(record);
    } catch (err) {
      // The operation is queued: answering an error now would make the client ask twice.
      this.deps.warn('could not write the first operation record', { err, operationId: request.id });
    }
    return record;
  }

  /** Waits up to `waitMs` for a just-requested operation to end: its final record, or the freshest one. */
  async awaitEnd(record: OperationRecord, waitMs: number): Promise<OperationView> {
    const { org, deviceId, id } = record;
    // The twin ended it itself (a device that answered its push at once): there is no workflow to wait for.
    if (isFinal(record.status)) return { record, ended: true };
    const ended = await this.deps.twins.waitForOperation(org, deviceId, id, waitMs, this.lookup(org, id));
    if (ended) return { record: ended, ended: true };
    const now = await this.current(org, id);
    return { record: now.ok && now.value.rev > record.rev ? now.value : record, ended: false };
  }

  /** The freshest record: the read model, or the running workflow when it knows more. */
  async current(org: string, id: string, waitMs = 0): Promise<Outcome<OperationRecord>> {
    const stored = await this.stored(org, id);
    if (!stored) return refused('NOT_FOUND', `operation ${id} not found`);
    if (waitMs > 0) {
      // Waiting means until the workflow has ended, not only its record: a device answer after this is late.
      // A final record whose workflow Temporal no longer keeps waits at most a second.
      const wait = isFinal(stored.status) ? Math.min(waitMs, 1_000) : waitMs;
      const ended = await this.deps.twins.waitForOperation(
        org,
        stored.deviceId,
        id,
        wait,
        this.lookup(org, id),
      );
      if (ended) return accepted(ended);
    }
    if (isFinal(stored.status)) return accepted(stored);
    const live = await this.deps.twins.queryOperation(org, stored.deviceId, id, 1_000);
    if (live && live.rev > stored.rev) return accepted(live);
    // The workflow ended between the two reads: its last write is in the store.
    return accepted((await this.deps.operations.get(org, id)) ?? stored);
  }

  /** Asks the twin to cancel; answers the record as it stood (awaitEnd then waits for the end). */
  async cancel(org: string, id: string, actor: string): Promise<Outcome<OperationRecord>> {
    const stored = await this.stored(org, id);
    if (!stored) return refused('NOT_FOUND', `operation ${id} not found`);
    const over = (status: OperationStatus) =>
      refused('CONFLICT', `operation ${id} has already ended (${status})`);
    if (isFinal(stored.status)) return over(stored.status);
    try {
      await this.deps.twins.cancelOperation(org, stored.deviceId, id, actor);
      return accepted(stored);
    } catch (err) {
      // Not open on the twin any more: it ended meanwhile.
      if (!(err instanceof RefusedError && err.code === 'NOT_FOUND')) throw err;
      const now = await this.current(org, id);
      if (now.ok && isFinal(now.value.status)) return over(now.value.status);
      throw err;
    }
  }

  /** A device's answer: handed to the running operation, or counted as late on its ended record. */
  async respond(org: string, deviceId: string, body: ResponseEnvelope): Promise<Outcome<ResponseOutcome>> {
    const id = body.operation.response.id;
    const receivedAt = this.deps.now();
    if (!(await this.deps.directory.get(org, deviceId)))
      return refused('NOT_FOUND', `device ${deviceId} is not provisioned`);
    if (!OPERATION_ID_PATTERN.test(id)) return refused('NOT_FOUND', `operation ${id} not found`);
    const response = toDeviceResponse(body.operation.response);
    const twins = this.deps.twins;
    if (await twins.reportOperationResponse(org, deviceId, id, response, receivedAt))
      return accepted({ handed: true });
    // No running operation of this device has that id: another device's, an ended one, or none at all.
    const record = await this.deps.operations.get(org, id);
    if (!record) return refused('NOT_FOUND', `operation ${id} not found`);
    if (record.deviceId !== deviceId)
      return refused('PERMISSION_DENIED', `operation ${id} belongs to another device`);
    // Not ended: the twin is pushing it itself or starting its workflow, and holds or passes on the response.
    if (!isFinal(record.status)) {
      if (await twins.forwardOperationResponse(org, deviceId, id, response, receivedAt))
        return accepted({ handed: true });
      if (await twins.reportOperationResponse(org, deviceId, id, response, receivedAt))
        return accepted({ handed: true });
    }
    await this.deps.operations.countLateResponse(org, id);
    return accepted({ handed: false, id, status: record.status });
  }

  /**
   * Hands a polling device the operations waiting for it (each once: the twin marks them delivered). A
   * decommissioned device gets none; an unknown one is refused.
   */
  async claimPending(org: string, deviceId: string, limit = MAX_CLAIM): Promise<Outcome<RequestEnvelope[]>> {
    const device = await this.deps.directory.get(org, deviceId);
    if (!device) return refused('NOT_FOUND', `device ${deviceId} is not provisioned`);
    if (!device.active) return accepted([]);
    // The twin stores how many operations wait for a poll before it acknowledges one: none, nothing to ask it.
    if ((await this.markers.waiting(org, deviceId)) === 0) return accepted([]);
    return accepted(await this.deps.twins.claimPendingOperations(org, deviceId, Math.min(limit, MAX_CLAIM)));
  }

  private lookup(org: string, id: string): () => Promise<OperationRecord | null> {
    return () => this.deps.operations.get(org, id);
  }

  /** The stored record; an id that cannot be an operation's is not looked up. */
  private async stored(org: string, id: string): Promise<OperationRecord | null> {
    return OPERATION_ID_PATTERN.test(id) ? this.deps.operations.get(org, id) : null;
  }

  /** The request as the twin takes it, after every check that does not need the twin. */
  private async build(
    org: string,
    actor: string,
    deviceId: string,
    order: OperationOrder,
    id: string,
  ): Promise<Outcome<{ request: OperationRequest; mqtt: boolean }>> {
    const params = normalizeParameters(order.parameters);
    if (!params.ok) return refused('INVALID_ARGUMENT', params.message);
    // Cached for a few seconds; the twin refuses requests for a device decommissioned meanwhile.
    const doc = await this.deps.directory.get(org, deviceId);
    if (!doc) return refused('NOT_FOUND', `device ${deviceId} not found`);
    if (!doc.active) return refused('CONFLICT', `device ${deviceId} is decommissioned`);
    const type = getTwinType(doc.twinType);
    if (!type) return refused('CONFLICT', `device ${deviceId} has an unknown twin type ${doc.twinType}`);
    // Checked here so a bad request never reaches the queue; the twin checks again.
    const checked = checkOperation(type.operations, type.name, order.name, params.value);
    if (!checked.ok) return refused('INVALID_ARGUMENT', checked.message);
    const chosen = chooseDelivery(order.delivery, doc.transport);
    if (!chosen.ok) return refused('INVALID_ARGUMENT', `device ${deviceId}: ${chosen.message}`);
    const delivery = chosen.value;
    const push = delivery === 'push';
    const url = doc.transport.http?.operationUrl;
    const platformKey = doc.transport.http?.apiKey;
    const request: OperationRequest = {
      id,
      org,
      deviceId,
      twinType: type.name,
      name: order.name,
      parameters: checked.value,
      delivery,
      ...(push && url ? { operationUrl: url } : {}),
      ...(push && platformKey ? { platformKey } : {}),
      timeoutMs: order.timeoutMs ?? OPERATION_DEFAULTS.timeoutMs,
      ttlMs: order.ttlMs ?? OPERATION_DEFAULTS.ttlMs,
      retries: order.retries ?? OPERATION_DEFAULTS.retries,
      retriesDelayMs: order.retriesDelayMs ?? OPERATION_DEFAULTS.retriesDelayMs,
      retryResultList: order.retryResultList ?? OPERATION_DEFAULTS.retryResultList,
      requestedBy: actor,
      createdAt: this.deps.now(),
    };
    return accepted({ request, mqtt: doc.transport.mqtt !== undefined });
  }

  /** Hands the request to the twin; a twin that has ended is explained from the inventory. */
  private async admit(request: OperationRequest): Promise<Outcome<OperationAdmission>> {
    const { org, deviceId } = request;
    try {
      return accepted(await this.deps.twins.requestOperation(request));
    } catch (err) {
      if (!(err instanceof RefusedError)) throw err;
      if (err.code !== 'NOT_FOUND') return refused(err.code, err.message);
      // The directory's copy may predate a decommission; a twin that has ended says why in the inventory.
      this.deps.directory.forget(org, deviceId);
      const fresh = await this.deps.devices.get(org, deviceId);
      if (fresh && fresh.lifecycle !== 'ACTIVE')
        return refused('CONFLICT', `device ${deviceId} is decommissioned`);
      return refused(err.code, err.message);
    }
  }
}
