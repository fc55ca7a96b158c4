// North API for devices: provision (one and bulk), list, get with live twin state, change, decommission, history.
import { z } from 'zod';
import { fromStoredValue } from '../../inventory/storable';
import { can, RouteGroup } from '../access/route-group';
import type { DeviceDoc } from '../../inventory/documents';
import type { NewEvent } from '../../events/event-types';
import { audit } from '../audit';
import { logEvents } from '../events-log';
import { actorOf } from '../context';
import { ApiError } from '../errors';
import type { Services } from '../services';
import { deviceIdParam, parseWith, type PathParam } from '../validation';
import {
  bulkProvisionSchema,
  getDeviceQuerySchema,
  decodeCursor,
  deviceView,
  encodeCursor,
  listQuerySchema,
  patchDeviceSchema,
  provisionSchema,
} from './device.schemas';
import { AGGREGATES, MAX_BUCKETS, aggregateBuckets, bucketCount, bucketSchema } from './history-buckets';
import { type ProvisionOutcome, provisionDevices } from './provisioning';

/** The organization's device, or 404 (another organization's answers the same). */
async function deviceOr404(
  services: Services,
  org: string,
  deviceId: string,
  withLatest = false,
): Promise<DeviceDoc> {
  const doc = await (withLatest
    ? services.devices.getWithLatest(org, deviceId)
    : services.devices.get(org, deviceId));
  if (!doc) throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
  return doc;
}

export const devicesRoutes = new RouteGroup('/north/v1/devices');
const tag = 'Devices';
const DEVICE_ID = deviceIdParam();

const outcomeBody = (o: ProvisionOutcome) =>
  o.ok
    ? { id: o.device.id, status: 201, device: deviceView(o.device), apiKey: o.apiKey }
    : {
        id: o.id,
        status: o.code === 'CONFLICT' ? 409 : o.code === 'INVALID_ARGUMENT' ? 400 : 503,
        error: { code: o.code, message: o.message },
      };

devicesRoutes.post(
  '/',
  can('devices:write'),
  { summary: 'Provision a device', tag, body: provisionSchema, responses: [201, 409] },
  async (c, { body: req }) => {
    const principal = c.get('principal');
    const services = c.get('services');
    const [outcome] = await provisionDevices(services, principal.org, actorOf(principal), [req]);
    if (!outcome) throw new ApiError('INTERNAL', 'provisioning produced no result');
    if (!outcome.ok) throw new ApiError(outcome.code, outcome.message);
    await audit(c, 'device.provision', `devices/${outcome.device.id}`, { type: outcome.device.type });
    await logEvents(c, [provisioned(outcome.device, services.now())]);
    return c.json({ ...deviceView(outcome.device), apiKey: outcome.apiKey }, 201);
  },
);

devicesRoutes.post(
  '/bulk',
  can('devices:write'),
  { summary: 'Provision many devices (per-item results)', tag, body: bulkProvisionSchema, responses: [200] },
  async (c, { body: { devices } }) => {
    const principal = c.get('principal');
    const ids = new Set<string>();
    const valid: z.infer<typeof provisionSchema>[] = [];
    const invalid = new Map<
      number,
      { id: string; status: number; error: { code: string; message: string; details?: unknown } }
    >();
    devices.forEach((raw, i) => {
      try {
        const req = parseWith(provisionSchema, raw, `devices[${i}]`);
        if (ids.has(req.id))
          throw new ApiError('INVALID_ARGUMENT', `device ${req.id} appears more than once in the request`);
        ids.add(req.id);
        valid.push(req);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        const id = typeof (raw as { id?: unknown })?.id === 'string' ? (raw as { id: string }).id : `#${i}`;
        invalid.set(i, {
          id,
          status: 400,
          error: { code: err.code, message: err.message, details: err.details },
        });
      }
    });
    const outcomes = await provisionDevices(c.get('services'), principal.org, actorOf(principal), valid);
    let v = 0;
    const results = devices.map((_raw, i) => invalid.get(i) ?? outcomeBody(outcomes[v++]!));
    const created = results.filter((r) => r.status === 201).length;
    if (created > 0) {
      const ids = results.filter((r) => r.status === 201).map((r) => r.id);
      await audit(c, 'device.provision', `devices/${ids.length === 1 ? ids[0] : '*'}`, {
        bulk: true,
        count: created,
        ids: ids.slice(0, 1_000),
      });
      const now = c.get('services').now();
      await logEvents(
        c,
        outcomes.flatMap((o) => (o.ok ? [provisioned(o.device, now)] : [])),
      );
    }
    return c.json({ created, failed: results.length - created, results }, 200);
  },
);

devicesRoutes.get(
  '/',
  can('devices:read'),
  { summary: 'List devices', tag, query: listQuerySchema },
  async (c, { query }) => {
    let after: string | undefined;
    if (query.cursor !== undefined) {
      after = decodeCursor(query.cursor);
      if (after === undefined) throw new ApiError('INVALID_ARGUMENT', 'invalid cursor');
    }
    const { org } = c.get('principal');
    const page = await c
      .get('services')
      .devices.list(
        org,
        { type: query.type, tag: query.tag, status: query.status, lifecycle: query.lifecycle, q: query.q },
        query.limit,
        after,
      );
    return c.json({
      items: page.items.map((d) => deviceView(d)),
      nextCursor: page.nextAfter === undefined ? null : encodeCursor(page.nextAfter),
    });
  },
);

devicesRoutes.get(
  '/:deviceId',
  can('devices:read'),
  {
    summary: 'Get a device with its live twin state',
    tag,
    params: { deviceId: DEVICE_ID },
    query: getDeviceQuerySchema,
  },
  async (c, { params: { deviceId }, query }) => {
    const { org } = c.get('principal');
    const services = c.get('services');
    const doc = await deviceOr404(services, org, deviceId, true);
    const live =
      doc.lifecycle === 'ACTIVE' && query.twin === 'live'
        ? await services.twins.getState(org, deviceId)
        : undefined;
    return c.json(deviceView(doc, live));
  },
);

devicesRoutes.patch(
  '/:deviceId',
  can('devices:write'),
  {
    summary: 'Change a device (through its twin)',
    tag,
    params: { deviceId: DEVICE_ID },
    body: patchDeviceSchema,
  },
  async (c, { params: { deviceId }, body: patch }) => {
    const { org } = c.get('principal');
    const services = c.get('services');
    const doc = await deviceOr404(services, org, deviceId);
    if (doc.lifecycle !== 'ACTIVE') throw new ApiError('CONFLICT', `device ${deviceId} is decommissioned`);
    // The twin validates and applies the change first; the record follows what the twin accepted.
    const profile = await services.twins.updateProfile(org, deviceId, patch);
    const updated = await services.devices.setProfile(org, deviceId, profile, new Date(services.now()));
    if (!updated) throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
    await audit(c, 'device.update', `devices/${deviceId}`, { fields: Object.keys(patch) });
    await logEvents(c, [
      { type: 'device.changed', deviceId, at: services.now(), body: { fields: Object.keys(patch) } },
    ]);
    return c.json(deviceView(updated));
  },
);

devicesRoutes.delete(
  '/:deviceId',
  can('devices:write'),
  { summary: 'Decommission a device', tag, params: { deviceId: DEVICE_ID } },
  async (c, { params: { deviceId } }) => {
    const { org } = c.get('principal');
    const services = c.get('services');
    const doc = await deviceOr404(services, org, deviceId);
    if (doc.lifecycle === 'ACTIVE') {
      await services.twins.decommission(org, deviceId);
      const now = new Date(services.now());
      await services.devices.markDecommissioned(org, deviceId, now);
      services.auth.forget(await services.keys.revokeDeviceKeys(org, deviceId, now));
      services.auth.forgetCertificates(await services.certificates.revokeDevice(org, deviceId, now));
      services.directory.forget(org, deviceId);
      await audit(c, 'device.decommission', `devices/${deviceId}`);
      await logEvents(c, [{ type: 'device.decommissioned', deviceId, at: now.getTime(), body: {} }]);
    }
    const after = await services.devices.getWithLatest(org, deviceId);
    return c.json(deviceView(after ?? doc));
  },
);

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const datastreamIdSchema = z
  .string()
  .min(1)
  .max(256)
  .refine((s) => !LONE_SURROGATE.test(s), 'must be well-formed Unicode');
const datastreamIdParam: PathParam = {
  schema: datastreamIdSchema,
  parse: (raw) => parseWith(datastreamIdSchema, raw, 'datastreamId'),
};
const DEFAULT_HISTORY_LIMIT = 1_000;
/** Points a bucketed read may aggregate; a wider range must be narrowed. */
const MAX_BUCKET_POINTS = 200_000;

const historyQuerySchema = z
  .object({
    from: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    to: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    limit: z.coerce.number().int().min(1).max(10_000).optional(),
    bucket: bucketSchema.optional(),
    agg: z.enum(AGGREGATES).optional(),
  })
  .strict()
  .superRefine((q, ctx) => {
    if (q.agg !== undefined && q.bucket === undefined)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['agg'], message: '`agg` needs `bucket`' });
    if (q.limit !== undefined && q.bucket !== undefined)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['limit'],
        message: '`limit` applies to raw datapoints, not to buckets',
      });
  });

devicesRoutes.get(
  '/:deviceId/datastreams/:datastreamId/datapoints',
  can('devices:read'),
  {
    summary:
      'Datapoint history of one datastream: raw points with from <= at <= to, newest first; or, with ' +
      '`bucket` and `agg`, aggregates over [from, to) in buckets aligned on `from` (empty buckets left out)',
    tag,
    params: { deviceId: DEVICE_ID, datastreamId: datastreamIdParam },
    query: historyQuerySchema,
  },
  async (c, { params: { deviceId, datastreamId }, query }) => {
    const { org } = c.get('principal');
    const services = c.get('services');
    const to = query.to ?? services.now();
    const from = query.from ?? 0;
    if (from > to) throw new ApiError('INVALID_ARGUMENT', '`from` is after `to`');
    if (query.bucket !== undefined) {
      if (from === to) throw new ApiError('INVALID_ARGUMENT', 'buckets need `from` before `to`');
      const count = bucketCount({ from, to, bucketMs: query.bucket });
      if (count > MAX_BUCKETS)
        throw new ApiError(
          'INVALID_ARGUMENT',
          `[from, to) holds ${count} buckets of ${query.bucket} ms; at most ${MAX_BUCKETS}: narrow the range or widen the bucket`,
        );
    }
    await deviceOr404(services, org, deviceId);
    if (query.bucket !== undefined) {
      const agg = query.agg ?? 'avg';
      // Buckets cover [from, to): `to` itself belongs to the next range.
      const rows = await services.datapoints.range(
        org,
        deviceId,
        datastreamId,
        from,
        to - 1,
        MAX_BUCKET_POINTS + 1,
      );
      if (rows.length > MAX_BUCKET_POINTS)
        throw new ApiError(
          'INVALID_ARGUMENT',
          `[from, to) holds more than ${MAX_BUCKET_POINTS} datapoints: narrow the range`,
        );
      const points = rows.map((r) => ({ at: r.at, value: fromStoredValue(r) }));
      return c.json({
        deviceId,
        datastreamId,
        from,
        to,
        bucket: query.bucket,
        agg,
        buckets: aggregateBuckets(points, { from, to, bucketMs: query.bucket, agg }),
      });
    }
    const limit = query.limit ?? DEFAULT_HISTORY_LIMIT;
    const rows = await services.datapoints.range(org, deviceId, datastreamId, from, to, limit);
    return c.json({
      deviceId,
      datastreamId,
      from,
      to,
      datapoints: rows.map((r) => ({
        feed: r.feed,
        value: fromStoredValue(r),
        at: r.at,
        ...(r.from === undefined ? {} : { from: r.from }),
      })),
    });
  },
);

/** The event of a device provisioned now. */
function provisioned(device: { id: string; type: string }, at: number): NewEvent {
  return { type: 'device.provisioned', deviceId: device.id, at, body: { type: device.type } };
}
