// Request schemas and the response view of devices on the north API.
import { z } from 'zod';
import type { DeviceDoc } from '../../inventory/documents';
import { fromStoredValue } from '../../inventory/storable';
import { MAX_ATTRIBUTES, MAX_TAGS, type TwinState } from '../../twins/twin-core';
import { alarmSummary } from '../../twins/behaviours';
import { operationCounts } from '../../twins/twin-operations';
import { DEVICE_ID_PATTERN } from '../../workflows/ids';

const attributeKey = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/, 'attribute names are letters, digits, _ and -')
  .refine((k) => !['__proto__', 'constructor', 'prototype'].includes(k), 'reserved attribute name');
const attributeValue = z.union([z.string().max(1024), z.number().finite(), z.boolean()]);
const tags = z.array(z.string().min(1).max(64)).max(MAX_TAGS);

const transportSchema = z
  .object({
    http: z
      .object({
        operationUrl: z
          .string()
          .url()
          .max(2048)
          .refine((u) => /^https?:\/\//.test(u), 'must be http(s)'),
        /** The X-ApiKey the device's server expects from TwinFlow; stored, never shown. */
        apiKey: z.string().min(1).max(512).optional(),
      })
      .strict()
      .optional(),
    mqtt: z.boolean().optional(),
    sleepy: z.boolean().optional(),
  })
  .strict();

export const provisionSchema = z
  .object({
    id: z
      .string()
      .regex(
        DEVICE_ID_PATTERN,
        'ids are 1-128 letters, digits and . _ : @ -, starting with a letter or digit',
      ),
    name: z.string().min(1).max(200).optional(),
    type: z.string().min(1).max(63).optional(),
    tags: tags.optional(),
    attributes: z
      .record(attributeKey, attributeValue)
      .refine((a) => Object.keys(a).length <= MAX_ATTRIBUTES, `at most ${MAX_ATTRIBUTES} attributes`)
      .optional(),
    transport: transportSchema.optional(),
  })
  .strict();

export type ProvisionRequest = z.infer<typeof provisionSchema>;

const MAX_BULK_DEVICES = 1_000;
export const bulkProvisionSchema = z
  .object({ devices: z.array(z.unknown()).min(1).max(MAX_BULK_DEVICES) })
  .strict();

export const patchDeviceSchema = z
  .object({
    name: z.string().min(1).max(200).nullable().optional(),
    tags: tags.optional(),
    attributes: z.record(attributeKey, attributeValue.nullable()).optional(),
  })
  .strict()
  .refine(
    (p) => p.name !== undefined || p.tags !== undefined || p.attributes !== undefined,
    'nothing to change',
  );

const statusValue = z.string().regex(/^[A-Z][A-Z_]{0,31}$/);
export const listQuerySchema = z
  .object({
    type: z.string().min(1).max(63).optional(),
    tag: z.string().min(1).max(64).optional(),
    status: statusValue.optional(),
    lifecycle: z.enum(['ACTIVE', 'DECOMMISSIONED']).optional(),
    q: z.string().min(1).max(128).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().max(400).optional(),
  })
  .strict();

/** `twin=snapshot` answers from the read model alone, without asking the live twin (cheaper, never waits). */
export const getDeviceQuerySchema = z.object({ twin: z.enum(['live', 'snapshot']).default('live') }).strict();

export const encodeCursor = (deviceId: string): string => Buffer.from(deviceId, 'utf8').toString('base64url');
export function decodeCursor(cursor: string): string | undefined {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  return DEVICE_ID_PATTERN.test(id) ? id : undefined;
}

export interface DatastreamValueView {
  id: string;
  feed: string;
  value: unknown;
  at: number;
}

/** The device as the API shows it: inventory record, latest stored values, and the twin (live or snapshot). */
export function deviceView(doc: DeviceDoc, live?: TwinState) {
  const datastreams: DatastreamValueView[] = [];
  for (const v of Object.values(doc.latest ?? {})) {
    datastreams.push({ id: v.id, feed: v.feed, value: fromStoredValue(v), at: v.at });
  }
  datastreams.sort((a, b) => (a.id === b.id ? a.feed.localeCompare(b.feed) : a.id.localeCompare(b.id)));
  const twin = live
    ? {
        source: 'live' as const,
        version: live.version,
        status: live.status,
        connectivity: live.connectivity,
        counters: live.counters,
        operations: operationCounts(live.operations),
        alarms: alarmSummary(live.behaviour),
        state: live.typeState,
        reported: live.reported,
        updatedAt: live.updatedAt,
      }
    : doc.twin
      ? {
          source: 'snapshot' as const,
          version: doc.twin.version,
          status: doc.twin.status,
          connectivity: doc.twin.connectivity,
          counters: doc.twin.counters,
          operations: doc.twin.operations ?? { open: 0, waiting: 0 },
          alarms: doc.twin.alarms ?? alarmSummary(undefined),
          state: doc.twin.typeState,
          updatedAt: doc.twin.updatedAt,
        }
      : undefined;
  return {
    id: doc.id,
    name: doc.name,
    type: doc.type,
    tags: doc.tags,
    attributes: doc.attributes,
    transport: transportView(doc.transport),
    lifecycle: doc.lifecycle,
    status: doc.lifecycle === 'DECOMMISSIONED' ? 'DECOMMISSIONED' : (twin?.status ?? 'PROVISIONING'),
    lastSeenAt: doc.lastSeenAt ?? null,
    createdAt: doc.createdAt.getTime(),
    updatedAt: doc.updatedAt.getTime(),
    ...(doc.decommissionedAt ? { decommissionedAt: doc.decommissionedAt.getTime() } : {}),
    datastreams,
    twin,
  };
}

/** The transport without the device's secret. */
function transportView(t: DeviceDoc['transport']) {
  if (!t.http) return t;
  const { apiKey, ...http } = t.http;
  return { ...t, http: { ...http, ...(apiKey !== undefined ? { hasApiKey: true } : {}) } };
}
