// North API for alarms: a device's alarms, the organization's alarms across the fleet (a query on the inventory,
// never a fan-out to twins), and acknowledge / clear, which go through the device's twin (the alarms' owner).
import { z } from 'zod';
import type { AlarmDoc } from '../../inventory/documents';
import { fromStoredValue } from '../../inventory/storable';
import { ALARM_SEVERITIES } from '../../twins/behaviours';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { actorOf } from '../context';
import { ApiError } from '../errors';
import { deviceIdParam, patternParam } from '../validation';

export const deviceAlarmsRoutes = new RouteGroup('/north/v1/devices/:deviceId/alarms');
export const alarmsRoutes = new RouteGroup('/north/v1/alarms');
const tag = 'Alarms';

const DEVICE_ID = deviceIdParam();
const ALARM_NAME = patternParam(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, (raw) => `alarm ${raw} not found`);

const listAlarmsQuerySchema = z
  .object({
    /** Default ACTIVE: the open alarms. */
    status: z.enum(['ACTIVE', 'CLEARED', 'ANY']).default('ACTIVE'),
    severity: z.enum(ALARM_SEVERITIES).optional(),
    type: z.string().min(1).max(63).optional(),
    tag: z.string().min(1).max(64).optional(),
    acknowledged: z.enum(['true', 'false']).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().max(600).optional(),
  })
  .strict();

/** An alarm as the API shows it. */
export function alarmView(doc: AlarmDoc) {
  return {
    deviceId: doc.deviceId,
    name: doc.name,
    twinType: doc.twinType,
    severity: doc.severity,
    status: doc.status,
    message: doc.message,
    acknowledged: doc.acknowledged,
    acknowledgedBy: doc.acknowledgedBy,
    acknowledgedAt: doc.acknowledgedAt,
    firstRaisedAt: doc.firstRaisedAt,
    lastRaisedAt: doc.lastRaisedAt,
    reRaises: doc.reRaises,
    clearedAt: doc.clearedAt,
    clearedBy: doc.clearedBy,
    clearableByHand: doc.clearableByHand,
    tags: doc.tags,
    rev: doc.rev,
  };
}

const encodeCursor = (id: string): string => Buffer.from(id, 'utf8').toString('base64url');

alarmsRoutes.get(
  '/',
  can('alarms:read'),
  {
    summary: "The organization's alarms across the fleet (open ones unless status says otherwise)",
    tag,
    query: listAlarmsQuerySchema,
  },
  async (c, { query }) => {
    const { org } = c.get('principal');
    let after: string | undefined;
    if (query.cursor !== undefined) {
      after = Buffer.from(query.cursor, 'base64url').toString('utf8');
      if (!after.startsWith(`${org}/`)) throw new ApiError('INVALID_ARGUMENT', 'invalid cursor');
    }
    const page = await c.get('services').alarms.list(
      org,
      {
        ...(query.status !== 'ANY' ? { status: query.status } : {}),
        ...(query.severity ? { severity: query.severity } : {}),
        ...(query.type ? { twinType: query.type } : {}),
        ...(query.tag ? { tag: query.tag } : {}),
        ...(query.acknowledged ? { acknowledged: query.acknowledged === 'true' } : {}),
      },
      query.limit,
      after,
    );
    return c.json({
      items: page.items.map(alarmView),
      nextCursor: page.nextAfter ? encodeCursor(page.nextAfter) : null,
    });
  },
);

deviceAlarmsRoutes.get(
  '/',
  can('alarms:read'),
  {
    summary: "A device's alarms, active and cleared",
    tag,
    params: { deviceId: DEVICE_ID },
  },
  async (c, { params: { deviceId } }) => {
    const { org } = c.get('principal');
    const services = c.get('services');
    if (!(await services.devices.get(org, deviceId)))
      throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
    const items = await services.alarms.listForDevice(org, deviceId);
    return c.json({ items: items.map(alarmView) });
  },
);

for (const action of ['acknowledge', 'clear'] as const) {
  deviceAlarmsRoutes.post(
    `/:name/${action}`,
    can('alarms:manage'),
    {
      summary:
        action === 'acknowledge' ? 'Acknowledge an alarm' : 'Clear an alarm by hand (where its type allows)',
      tag,
      params: { deviceId: DEVICE_ID, name: ALARM_NAME },
      responses: [200, 404, 409],
    },
    async (c, { params: { deviceId, name } }) => {
      const principal = c.get('principal');
      const services = c.get('services');
      const doc = await services.devices.get(principal.org, deviceId);
      if (!doc) throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
      if (doc.lifecycle !== 'ACTIVE') throw new ApiError('CONFLICT', `device ${deviceId} is decommissioned`);
      await services.twins.alarmAction(principal.org, deviceId, { name, action, by: actorOf(principal) });
      await audit(c, `alarm.${action}`, `devices/${deviceId}/alarms/${name}`, { deviceId, name });
      // The twin stored the alarm before it answered.
      const stored = await services.alarms.get(principal.org, deviceId, name);
      if (!stored) throw new ApiError('NOT_FOUND', `alarm ${name} not found`);
      return c.json(alarmView(stored));
    },
  );
}

/** Custom events a device's twin emitted (reactions' `event` effects), newest first. */
export const deviceEventsRoutes = new RouteGroup('/north/v1/devices/:deviceId/events');

deviceEventsRoutes.get(
  '/',
  can('devices:read'),
  {
    summary: "A device's twin events, newest first",
    tag: 'Devices',
    params: { deviceId: DEVICE_ID },
    query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) }).strict(),
  },
  async (c, { params: { deviceId }, query: { limit } }) => {
    const { org } = c.get('principal');
    const services = c.get('services');
    if (!(await services.devices.get(org, deviceId)))
      throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
    const events = await services.alarms.listEvents(org, deviceId, limit);
    return c.json({
      items: events.map((e) => ({ id: e.id, name: e.name, data: fromStoredValue(e.data), at: e.at })),
    });
  },
);
