// The OpenGate v80 south face for devices: data collection, operation responses and the pending poll.
import { z } from 'zod';
import { responseEnvelopeSchema } from '../../twins/operation-envelopes';
import { DEVICE, RouteGroup } from '../access/route-group';
import { orThrow } from '../errors';
import { collectBodySchema } from '../../ingest/collect.schema';
import { deviceIdParam } from '../validation';

export const southRoutes = new RouteGroup('/south/v80/devices');
const tag = 'South (devices)';

const NOT_PROVISIONED = 'is not provisioned';
const DEVICE_ID = deviceIdParam(NOT_PROVISIONED);

southRoutes.post(
  '/:deviceId/collect/iot',
  DEVICE,
  {
    summary: 'Send datapoints (OpenGate collect)',
    tag,
    params: { deviceId: DEVICE_ID },
    body: collectBodySchema,
    responses: [201],
  },
  async (c, { params: { deviceId }, body }) => {
    const principal = c.get('principal');
    orThrow(await c.get('services').ingestor.ingest(principal, deviceId, body, 'http'));
    return c.body(null, 201);
  },
);

southRoutes.post(
  '/:deviceId/operation/response',
  DEVICE,
  {
    summary: 'Answer an operation (partial steps or final result)',
    tag,
    params: { deviceId: DEVICE_ID },
    body: responseEnvelopeSchema,
    responses: [201, 200],
  },
  async (c, { params: { deviceId }, body }) => {
    const principal = c.get('principal');
    const { operationsService } = c.get('services');
    const outcome = orThrow(await operationsService.respond(principal.org, deviceId, body));
    if (outcome.handed) return c.body(null, 201);
    return c.json(
      {
        id: outcome.id,
        status: outcome.status,
        late: true,
        message: 'the operation has already ended; the response was recorded as late and changed nothing',
      },
      200,
    );
  },
);

const pendingQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(100),
    'X-ApiKey': z.string().optional(),
  })
  .strict();

southRoutes.on(
  ['GET', 'POST'],
  '/:deviceId/operation/pending',
  DEVICE,
  {
    summary: 'Take the operations waiting for this device',
    tag,
    params: { deviceId: DEVICE_ID },
    query: pendingQuerySchema,
  },
  async (c, { params: { deviceId }, query: { limit } }) => {
    const principal = c.get('principal');
    const { operationsService } = c.get('services');
    return c.json(orThrow(await operationsService.claimPending(principal.org, deviceId, limit)));
  },
);
