// North API for operations: request one on a device (202), list a device's, get one (optionally waiting for
// its end), cancel. The twin orders and runs them; MongoDB holds their records as a read model.
import { randomUUID } from 'node:crypto';
import { checkOperation } from '../../twins/operation-catalogue';
import {
  chooseDelivery,
  OPERATION_DEFAULTS,
  type OperationRecord,
  type OperationRequest,
  createOperationRecord,
  isFinal,
  normalizeParameters,
} from '../../twins/operations';
import { getTwinType } from '../../twins/registry';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { actorOf } from '../context';
import { ApiError } from '../errors';
import type { Services } from '../services';
import { deviceIdParam, patternParam } from '../validation';
import {
  OPERATION_ID_PATTERN,
  createOperationSchema,
  decodeOperationCursor,
  encodeOperationCursor,
  getOperationQuerySchema,
  listOperationsQuerySchema,
  operationView,
} from './operation.schemas';

export const deviceOperationsRoutes = new RouteGroup('/north/v1/devices/:deviceId/operations');
export const operationsRoutes = new RouteGroup('/north/v1/operations');
const tag = 'Operations';

const DEVICE_ID = deviceIdParam();
const OPERATION_ID = patternParam(OPERATION_ID_PATTERN, (raw) => `operation ${raw} not found`);

deviceOperationsRoutes.post(
  '/',
  can('operations:create'),
  {
    summary: 'Request an operation on a device',
    tag,
    params: { deviceId: DEVICE_ID },
    body: createOperationSchema,
    query: getOperationQuerySchema,
    responses: [202, 200, 409, 429],
  },
  async (c, { params: { deviceId }, body, query: { waitMs } }) => {
    const principal = c.get('principal');
    const services = c.get('services');
    const params = normalizeParameters(body.parameters);
    if (!params.ok) throw new ApiError('INVALID_ARGUMENT', params.message);

    // Cached for a few seconds; the twin refuses requests for a device decommissioned meanwhile.
    const doc = await services.directory.get(principal.org, deviceId);
    if (!doc) throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
    if (!doc.active) throw new ApiError('CONFLICT', `device ${deviceId} is decommissioned`);
    const type = getTwinType(doc.twinType);
    if (!type) throw new ApiError('CONFLICT', `device ${deviceId} has an unknown twin type ${doc.twinType}`);
    // Checked here so a bad request never reaches the queue; the twin checks again.
    const checked = checkOperation(type.operations, type.name, body.name, params.value);
    if (!checked.ok) throw new ApiError('INVALID_ARGUMENT', checked.message);

    const chosen = chooseDelivery(body.delivery, doc.transport);
    if (!chosen.ok) throw new ApiError('INVALID_ARGUMENT', `device ${deviceId}: ${chosen.message}`);
    const delivery = chosen.value;
    const url = doc.transport.http?.operationUrl;
    const request: OperationRequest = {
      id: randomUUID(),
      org: principal.org,
      deviceId,
      twinType: type.name,
      name: body.name,
      parameters: checked.value,
      delivery,
      ...(delivery === 'push' && url ? { operationUrl: url } : {}),
      ...(delivery === 'push' && doc.transport.http?.apiKey
        ? { platformKey: doc.transport.http.apiKey }
        : {}),
      timeoutMs: body.timeoutMs ?? OPERATION_DEFAULTS.timeoutMs,
      ttlMs: body.ttlMs ?? OPERATION_DEFAULTS.ttlMs,
      retries: body.retries ?? OPERATION_DEFAULTS.retries,
      retriesDelayMs: body.retriesDelayMs ?? OPERATION_DEFAULTS.retriesDelayMs,
      retryResultList: body.retryResultList ?? OPERATION_DEFAULTS.retryResultList,
      requestedBy: actorOf(principal),
      createdAt: services.now(),
    };
    try {
      await services.twins.requestOperation(request);
    } catch (err) {
      // The directory's copy may predate a decommission; a twin that has ended says why in the inventory.
      if (!(err instanceof ApiError) || err.code !== 'NOT_FOUND') throw err;
      services.directory.forget(principal.org, deviceId);
      const fresh = await services.devices.get(principal.org, deviceId);
      if (fresh && fresh.lifecycle !== 'ACTIVE') {
        throw new ApiError('CONFLICT', `device ${deviceId} is decommissioned`);
      }
      throw err;
    }
    const record = createOperationRecord(request);
    try {
      // The workflow writes every later revision; this one makes the operation listable at once.
      await services.operations.insertFirst(record);
    } catch (err) {
      // The operation is queued: answering an error now would make the client ask twice.
      c.get('logger').warn({ err, operationId: request.id }, 'could not write the first operation record');
    }
    await audit(c, 'operation.request', `operations/${request.id}`, {
      deviceId,
      name: request.name,
      delivery,
    });
    // An MQTT device listening right now gets it at once; otherwise when it next subscribes.
    if (delivery === 'pending' && doc.transport.mqtt && services.mqtt) {
      void services.mqtt.deliverPending(principal.org, deviceId);
    }
    c.header('Location', `/north/v1/operations/${request.id}`);
    if (waitMs > 0) {
      // Asked to wait: the final record if the operation ends in time (200), else as accepted (202).
      const ended = await services.twins.waitForOperation(principal.org, deviceId, request.id, waitMs);
      if (ended) return c.json(operationView(ended), 200);
      const live = await services.twins.queryOperation(principal.org, deviceId, request.id, 1_000);
      return c.json(operationView(live && live.rev > record.rev ? live : record), 202);
    }
    return c.json(operationView(record), 202);
  },
);

deviceOperationsRoutes.get(
  '/',
  can('operations:read'),
  {
    summary: "List a device's operations, newest first",
    tag,
    params: { deviceId: DEVICE_ID },
    query: listOperationsQuerySchema,
  },
  async (c, { params: { deviceId }, query }) => {
    let after: { createdAt: number; id: string } | undefined;
    if (query.cursor !== undefined) {
      after = decodeOperationCursor(query.cursor);
      if (!after) throw new ApiError('INVALID_ARGUMENT', 'invalid cursor');
    }
    const { org } = c.get('principal');
    const services = c.get('services');
    if (!(await services.devices.get(org, deviceId)))
      throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
    const page = await services.operations.listForDevice(org, deviceId, query.limit, {
      ...(query.status ? { status: query.status } : {}),
      ...(after ? { after } : {}),
    });
    return c.json({
      items: page.items.map(operationView),
      nextCursor: page.nextAfter ? encodeOperationCursor(page.nextAfter) : null,
    });
  },
);

/** The freshest record: the read model, or the running workflow when it knows more. */
async function currentRecord(
  services: Services,
  org: string,
  id: string,
  waitMs: number,
): Promise<OperationRecord> {
  const stored = await services.operations.get(org, id);
  if (!stored) throw new ApiError('NOT_FOUND', `operation ${id} not found`);
  if (waitMs > 0) {
    // Waiting means until the workflow has ended, not only its record: a device answer after this is late.
    // A final record whose workflow Temporal no longer keeps waits at most a second.
    const wait = isFinal(stored.status) ? Math.min(waitMs, 1_000) : waitMs;
    const ended = await services.twins.waitForOperation(org, stored.deviceId, id, wait);
    if (ended) return ended;
  }
  if (isFinal(stored.status)) return stored;
  const live = await services.twins.queryOperation(org, stored.deviceId, id, 1_000);
  if (live && live.rev > stored.rev) return live;
  // The workflow ended between the two reads: its last write is in the store.
  return (await services.operations.get(org, id)) ?? stored;
}

operationsRoutes.get(
  '/:operationId',
  can('operations:read'),
  {
    summary: 'Get an operation (optionally wait for its end)',
    tag,
    params: { operationId: OPERATION_ID },
    query: getOperationQuerySchema,
  },
  async (c, { params: { operationId: id }, query: { waitMs } }) => {
    const record = await currentRecord(c.get('services'), c.get('principal').org, id, waitMs);
    return c.json(operationView(record));
  },
);

operationsRoutes.post(
  '/:operationId/cancel',
  can('operations:cancel'),
  { summary: 'Cancel an operation', tag, params: { operationId: OPERATION_ID }, responses: [200, 202, 409] },
  async (c, { params: { operationId: id } }) => {
    const principal = c.get('principal');
    const services = c.get('services');
    const stored = await services.operations.get(principal.org, id);
    if (!stored) throw new ApiError('NOT_FOUND', `operation ${id} not found`);
    if (isFinal(stored.status)) {
      throw new ApiError('CONFLICT', `operation ${id} has already ended (${stored.status})`);
    }
    try {
      await services.twins.cancelOperation(principal.org, stored.deviceId, id, actorOf(principal));
    } catch (err) {
      // Not open on the twin any more: it ended meanwhile.
      if (!(err instanceof ApiError && err.code === 'NOT_FOUND')) throw err;
      const now = await currentRecord(services, principal.org, id, 0);
      if (isFinal(now.status))
        throw new ApiError('CONFLICT', `operation ${id} has already ended (${now.status})`);
      throw err;
    }
    await audit(c, 'operation.cancel', `operations/${id}`, { deviceId: stored.deviceId });
    // 200 once the operation's workflow has ended, so a device answer after this is late for certain.
    const ended = await services.twins.waitForOperation(principal.org, stored.deviceId, id, 5_000);
    if (ended) return c.json(operationView(ended), 200);
    return c.json(operationView(await currentRecord(services, principal.org, id, 0)), 202);
  },
);
