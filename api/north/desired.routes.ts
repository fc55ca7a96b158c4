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

/** Deepest nesting a desired value may have: deeper bodies are refused, not carried into the twin's history. */
const MAX_DESIRED_DEPTH = 16;
const MAX_DESIRED_BYTES = 64 * 1024;

const depthOf = (v: unknown, limit: number): number => {
  if (v === null || typeof v !== 'object') return 0;
  if (limit <= 0) return 1;
  let deepest = 0;
  for (const x of Object.values(v)) deepest = Math.max(deepest, depthOf(x, limit - 1));
  return 1 + deepest;
};

/** A JSON merge patch of the desired document: a key set to null is removed. */
const desiredPatchSchema = z.record(z.string().min(1).max(128), z.unknown()).superRefine((patch, ctx) => {
  // Depth first: a body nested thousands deep must not reach JSON.stringify.
  if (depthOf(patch, MAX_DESIRED_DEPTH + 1) > MAX_DESIRED_DEPTH)
    ctx.addIssue({ code: 'custom', message: `desired values nest at most ${MAX_DESIRED_DEPTH} levels deep` });
  else if (JSON.stringify(patch).length > MAX_DESIRED_BYTES)
    ctx.addIssue({
      code: 'custom',
      message: `a desired-state patch is at most ${MAX_DESIRED_BYTES} bytes of JSON`,
    });
});

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
