// North API for a device's desired state: read it with its sync status (per key and overall), change it with a
// version (If-Match answers 412 when it is stale). The twin keeps it and reconciles the device towards it.
import { z } from 'zod';
import { desiredOf } from '../../twins/twin-core';
import { getTwinType } from '../../twins/registry';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { actorOf } from '../context';
import { ApiError } from '../errors';
import { deviceIdParam } from '../validation';

export const desiredRoutes = new RouteGroup('/north/v1/devices/:deviceId/desired');
const tag = 'Desired state';
const DEVICE_ID = deviceIdParam();

/** A JSON merge patch of the desired document: a key set to null is removed. */
const desiredPatchSchema = z.record(z.string().min(1).max(128), z.unknown());

const etag = (version: number): string => `"${version}"`;

/** `"3"`, `W/"3"` or `3`; anything else is refused. */
function parseIfMatch(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const m = /^(?:W\/)?"?(\d{1,15})"?$/.exec(raw.trim());
  if (!m) throw new ApiError('INVALID_ARGUMENT', 'If-Match must be the ETag of a desired-state version');
  return Number(m[1]);
}

desiredRoutes.get(
  '/',
  can('devices:read'),
  {
    summary: "A device's desired state and whether the device is in sync",
    tag,
    params: { deviceId: DEVICE_ID },
  },
  async (c, { params: { deviceId } }) => {
    const { org } = c.get('principal');
    const services = c.get('services');
    const doc = await services.devices.get(org, deviceId);
    if (!doc) throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
    const type = getTwinType(doc.type);
    if (!type?.desired) throw new ApiError('NOT_FOUND', `twin type ${doc.type} declares no desired state`);
    const live = doc.lifecycle === 'ACTIVE' ? await services.twins.getState(org, deviceId) : undefined;
    const view = live ? desiredOf(type, live) : (doc.twin?.desired ?? null);
    if (!view) throw new ApiError('UNAVAILABLE', 'the twin does not answer; try again');
    c.header('ETag', etag(view.version));
    return c.json({ ...view, source: live ? 'live' : 'snapshot' });
  },
);

desiredRoutes.patch(
  '/',
  can('devices:write'),
  {
    summary: 'Change the desired state (JSON merge patch; If-Match for a version)',
    tag,
    params: { deviceId: DEVICE_ID },
    body: desiredPatchSchema,
    responses: [200, 400, 404, 409, 412],
  },
  async (c, { params: { deviceId }, body }) => {
    const principal = c.get('principal');
    const services = c.get('services');
    const ifVersion = parseIfMatch(c.req.header('If-Match'));
    const doc = await services.devices.get(principal.org, deviceId);
    if (!doc) throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
    if (doc.lifecycle !== 'ACTIVE') throw new ApiError('CONFLICT', `device ${deviceId} is decommissioned`);
    const view = await services.twins.setDesired(principal.org, deviceId, {
      values: body,
      ...(ifVersion !== undefined ? { ifVersion } : {}),
      by: actorOf(principal),
    });
    if (!view) throw new ApiError('INVALID_ARGUMENT', `twin type ${doc.type} declares no desired state`);
    await audit(c, 'device.desired', `devices/${deviceId}/desired`, {
      version: view.version,
      keys: Object.keys(body),
    });
    c.header('ETag', etag(view.version));
    return c.json({ ...view, source: 'live' });
  },
);
