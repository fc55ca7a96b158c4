// Devices that speak their own format: `collect/{suffix}` bodies go through the matching connector function into the ingest path.
import { HTTP_PATH_PATTERN } from '../../functions/criteria';
import { DEVICE, RouteGroup } from '../access/route-group';
import { ApiError, orThrow } from '../errors';
import { deviceIdParam } from '../validation';

export const southFunctionsRoutes = new RouteGroup('/south/v80/devices');

southFunctionsRoutes.post(
  '/:deviceId/collect/:suffix',
  DEVICE,
  {
    summary:
      'Send a payload in the device’s own format (JSON, text, hex, binary), translated by a connector function',
    tag: 'South (devices)',
    params: { deviceId: deviceIdParam('is not provisioned') },
    rawBody: '*/*',
    responses: [201, 422],
  },
  // The body is the device's own bytes, read raw for the connector function; only the path is declared.
  async (c, { params: { deviceId } }) => {
    const suffix = c.req.param('suffix') ?? '';
    const principal = c.get('principal');
    const services = c.get('services');
    const device = await services.directory.get(principal.org, deviceId);
    if (!device) throw new ApiError('NOT_FOUND', `device ${deviceId} is not provisioned`);
    if (!device.active) throw new ApiError('GONE', `device ${deviceId} is decommissioned`);
    const noFunction = `no connector function in PRODUCTION translates collect/${suffix} for device ${deviceId}`;
    if (!HTTP_PATH_PATTERN.test(suffix)) throw new ApiError('NOT_FOUND', noFunction);
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    const result = await services.functions.translateHttp(
      principal.org,
      { deviceId, deviceType: device.twinType },
      suffix,
      bytes,
      c.req.header('content-type'),
    );
    switch (result.kind) {
      case 'none':
        throw new ApiError(
          'NOT_FOUND',
          result.tested > 0
            ? `${noFunction} (${result.tested} in TEST mode ran; nothing was stored)`
            : noFunction,
        );
      case 'bad-payload':
        throw new ApiError('BAD_REQUEST', result.error);
      case 'failed':
        throw new ApiError(
          'UNPROCESSABLE',
          `connector function ${result.function} (version ${result.version}) failed; nothing was stored: ${result.error}`,
        );
      case 'ok': {
        const stored = result.body
          ? orThrow(await services.ingestor.ingest(principal, deviceId, result.body, 'http')).stored
          : 0;
        return c.json({ function: result.function, version: result.version, stored }, 201);
      }
    }
  },
);
