// The OpenGate v80 south face for devices: data collection over HTTP.
import { Hono } from 'hono';
import { DEVICE_ID_PATTERN } from '../../workflows/ids';
import { assertDeviceAccess, requireKey } from '../auth';
import type { AppEnv } from '../context';
import { ApiError } from '../errors';
import { collectBodySchema } from '../ingest/collect.schema';
import { readJson } from '../validation';

export const southRoutes = new Hono<AppEnv>();

southRoutes.use('*', requireKey({ allowQueryKey: true }));

southRoutes.post('/:deviceId/collect/iot', async (c) => {
  const deviceId = c.req.param('deviceId');
  if (!DEVICE_ID_PATTERN.test(deviceId))
    throw new ApiError('NOT_FOUND', `device ${deviceId} is not provisioned`);
  const principal = c.get('principal');
  assertDeviceAccess(principal, deviceId);
  const body = await readJson(c, collectBodySchema);
  await c.get('services').ingestor.ingest(principal, deviceId, body, 'http');
  return c.body(null, 201);
});
