// Provisioning: the device record, its key and its twin, all or nothing for each device.
import type { ApiKeyDoc, DeviceDoc } from '../../inventory/documents';
import { DEFAULT_TWIN_TYPE, getTwinType, listTwinTypes } from '../../twins/registry';
import { createTwinState, toSnapshot } from '../../twins/twin-core';
import type { Services } from '../services';
import type { ProvisionRequest } from './device.schemas';

export type ProvisionOutcome =
  | { readonly ok: true; readonly device: DeviceDoc; readonly apiKey: string }
  | {
      readonly ok: false;
      readonly id: string;
      readonly code: 'INVALID_ARGUMENT' | 'CONFLICT' | 'UNAVAILABLE';
      readonly message: string;
    };

const TWIN_START_CONCURRENCY = 32;

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return results;
}

type Fresh = { req: ProvisionRequest; doc: DeviceDoc; key: ApiKeyDoc; secret: string };

/** The device record and key of one request, or why its type is refused. */
function prepare(
  services: Services,
  org: string,
  createdBy: string,
  req: ProvisionRequest,
  now: Date,
): Fresh | ProvisionOutcome {
  const type = req.type ?? DEFAULT_TWIN_TYPE;
  const twinType = getTwinType(type);
  if (!twinType) {
    const known = listTwinTypes()
      .map((t) => t.name)
      .join(', ');
    const message = `unknown device type ${JSON.stringify(type)}; known: ${known}`;
    return { ok: false, id: req.id, code: 'INVALID_ARGUMENT', message };
  }
  const doc: DeviceDoc = {
    _id: `${org}/${req.id}`,
    org,
    id: req.id,
    ...(req.name === undefined ? {} : { name: req.name }),
    type,
    tags: [...new Set(req.tags ?? [])],
    attributes: req.attributes ?? {},
    transport: req.transport ?? {},
    lifecycle: 'ACTIVE',
    createdAt: now,
    createdBy,
    updatedAt: now,
  };
  // The twin's first state is pure and known now: the read model starts with it, so a new twin has nothing to publish.
  const identity = { org, deviceId: req.id, twinType: type };
  const profile = { name: req.name, tags: doc.tags, attributes: doc.attributes };
  doc.twin = toSnapshot(createTwinState(twinType, identity, profile, now.getTime()));
  const { doc: key, secret } = services.keys.newKey(org, 'device', now, req.id);
  return { req, doc, key, secret };
}

/** Starts the twins of inserted devices; answers those whose twin could not start. */
async function startTwins(
  services: Services,
  org: string,
  inserted: readonly Fresh[],
  outcomes: Map<string, ProvisionOutcome>,
): Promise<Fresh[]> {
  const failed: Fresh[] = [];
  await mapLimit(inserted, TWIN_START_CONCURRENCY, async (f) => {
    try {
      await services.twins.startTwin(
        { org, deviceId: f.doc.id, twinType: f.doc.type },
        { name: f.doc.name, tags: f.doc.tags, attributes: f.doc.attributes },
        f.doc.twin?.status ?? 'PROVISIONING',
      );
      outcomes.set(f.doc.id, { ok: true, device: f.doc, apiKey: f.secret });
    } catch (err) {
      services.logger.error(
        { err, org, deviceId: f.doc.id },
        'could not start twin; rolling back the device',
      );
      failed.push(f);
      const message = 'the twin could not be started; try again';
      outcomes.set(f.doc.id, { ok: false, id: f.doc.id, code: 'UNAVAILABLE', message });
    }
  });
  return failed;
}

/**
 * Provisions devices of one organization. Records and keys are written in bulk, then the twins start;
 * a device whose twin cannot start is rolled back so the request can simply be repeated.
 * Ids must be unique within `requests` (the route checks).
 */
export async function provisionDevices(
  services: Services,
  org: string,
  createdBy: string,
  requests: readonly ProvisionRequest[],
): Promise<ProvisionOutcome[]> {
  const now = new Date(services.now());
  const outcomes = new Map<string, ProvisionOutcome>();
  const fresh: Fresh[] = [];
  for (const req of requests) {
    const prepared = prepare(services, org, createdBy, req, now);
    if ('doc' in prepared) fresh.push(prepared);
    else outcomes.set(req.id, prepared);
  }
  const { duplicates } = await services.devices.insertMany(fresh.map((f) => f.doc));
  const inserted = fresh.filter((f) => !duplicates.has(f.doc.id));
  for (const f of fresh) {
    if (!duplicates.has(f.doc.id)) continue;
    const message = `device ${f.doc.id} already exists`;
    outcomes.set(f.doc.id, { ok: false, id: f.doc.id, code: 'CONFLICT', message });
  }
  await services.keys.insertMany(inserted.map((f) => f.key));
  const failed = await startTwins(services, org, inserted, outcomes);
  if (failed.length > 0) {
    const ids = failed.map((f) => f.doc.id);
    await services.devices.removeProvisioned(
      org,
      ids,
      failed.map((f) => f.key._id),
    );
  }
  return requests.map((r) => outcomes.get(r.id)!);
}
