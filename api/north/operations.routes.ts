// North API for operations: request one on a device (202), list a device's, get one (optionally waiting for
// its end), cancel. The twin orders and runs them; MongoDB holds their records as a read model.
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { actorOf } from '../context';
import { ApiError, orThrow } from '../errors';
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
    const { operationsService } = c.get('services');
    const record = orThrow(
      await operationsService.request(principal.org, actorOf(principal), deviceId, body),
    );
    await audit(c, 'operation.request', `operations/${record.id}`, {
      deviceId,
      name: record.name,
      delivery: record.delivery,
    });
    c.header('Location', `/north/v1/operations/${record.id}`);
    if (waitMs <= 0) return c.json(operationView(record), 202);
    // Asked to wait: the final record if the operation ends in time (200), else as accepted (202).
    const view = await operationsService.awaitEnd(record, waitMs);
    return c.json(operationView(view.record), view.ended ? 200 : 202);
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
    const { operationsService } = c.get('services');
    const record = orThrow(await operationsService.current(c.get('principal').org, id, waitMs));
    return c.json(operationView(record));
  },
);

operationsRoutes.post(
  '/:operationId/cancel',
  can('operations:cancel'),
  { summary: 'Cancel an operation', tag, params: { operationId: OPERATION_ID }, responses: [200, 202, 409] },
  async (c, { params: { operationId: id } }) => {
    const principal = c.get('principal');
    const { operationsService } = c.get('services');
    const stored = orThrow(await operationsService.cancel(principal.org, id, actorOf(principal)));
    await audit(c, 'operation.cancel', `operations/${id}`, { deviceId: stored.deviceId });
    // 200 once the operation's workflow has ended, so a device answer after this is late for certain.
    const view = await operationsService.awaitEnd(stored, 5_000);
    return c.json(operationView(view.record), view.ended ? 200 : 202);
  },
);
