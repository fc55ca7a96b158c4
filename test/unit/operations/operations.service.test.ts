// The operations service's decisions with the twin and the store stubbed: typed refusals, what reaches the
// twin, the first record, late answers and the pending hand-over. The real stack is covered by the
// integration suites (operations, south, MQTT).
import type { DeviceDirectory, DeviceInfo } from '../../../ingest/device-directory';
import type { DeviceRepository } from '../../../inventory/devices.repo';
import type { OperationRepository } from '../../../inventory/operations.repo';
import type { PendingChange, PendingWriter } from '../../../inventory/pending-feed';
import { OperationsService } from '../../../operations/operations.service';
import type { TwinGateway } from '../../../operations/twin-gateway';
import type { OperationRecord, OperationRequest } from '../../../twins/operations';
import { RefusedError } from '../../../twins/outcomes';

const DEVICES: Record<string, DeviceInfo> = {
  push: {
    org: 'o',
    deviceId: 'push',
    twinType: 'generic',
    active: true,
    transport: { http: { operationUrl: 'http://127.0.0.1:1/ops' } },
  },
  sleepy: { org: 'o', deviceId: 'sleepy', twinType: 'generic', active: true, transport: { mqtt: {} } },
  unmarked: { org: 'o', deviceId: 'unmarked', twinType: 'generic', active: true, transport: {} },
  retired: { org: 'o', deviceId: 'retired', twinType: 'generic', active: false, transport: {} },
  odd: { org: 'o', deviceId: 'odd', twinType: 'no-such-type', active: true, transport: {} },
} as unknown as Record<string, DeviceInfo>;

function setup(twinError?: Error) {
  const requested: OperationRequest[] = [];
  const inserted: OperationRecord[] = [];
  const late: string[] = [];
  const kicked: string[] = [];
  const records = new Map<string, OperationRecord>();
  const markers = new Map<string, number>();
  // The store's feed of marker writes, as the twin's writes number them.
  const changes: PendingChange[] = [];
  const heard: ((key: string, waiting: number, writer: string) => void)[] = [];
  // A twin of this process writes it: stored, in the feed, and heard at once.
  const writeMarker = (deviceId: string, waiting: number) => {
    markers.set(deviceId, waiting);
    changes.push({ writer: 'w', seq: changes.length + 1, key: `o/${deviceId}` });
    for (const listener of heard) listener(`o/${deviceId}`, waiting, 'w');
  };
  const claims: string[] = [];
  const forwarded: string[] = [];
  const twinRecords = new Map<string, OperationRecord>();
  const twins = {
    requestOperation: async (r: OperationRequest) => {
      if (twinError) throw twinError;
      requested.push(r);
      const record = twinRecords.get(r.name);
      return { id: r.id, duplicate: false, ...(record ? { record } : {}) };
    },
    reportOperationResponse: async (_o: string, _d: string, id: string) => id === 'running-op',
    forwardOperationResponse: async (_o: string, _d: string, id: string) =>
      id === 'pushing-op' && forwarded.push(id) > 0,
    claimPendingOperations: async (_o: string, deviceId: string, limit: number) => {
      claims.push(deviceId);
      return [{ deviceId, limit }];
    },
  } as unknown as TwinGateway;
  const service = new OperationsService({
    twins,
    operations: {
      insertFirst: async (rec: OperationRecord) => inserted.push(rec) > 0,
      get: async (_org: string, id: string) => records.get(id) ?? null,
      countLateResponse: async (_org: string, id: string) => void late.push(id),
      pendingMarker: async (_org: string, deviceId: string) => markers.get(deviceId),
      pendingWriters: async () => [{ writer: 'w', seq: changes.length }],
      onLocalPendingWrite: (listener: (key: string, waiting: number, writer: string) => void) =>
        void heard.push(listener),
      pendingChanges: async (wanted: readonly PendingWriter[]) =>
        changes.filter((c) => wanted.some((w) => w.seq === c.seq)),
    } as unknown as OperationRepository,
    devices: {
      get: async (_org: string, id: string) => ({ lifecycle: id === 'push' ? 'DECOMMISSIONED' : 'ACTIVE' }),
    } as unknown as DeviceRepository,
    directory: {
      get: async (_org: string, id: string) => DEVICES[id],
      forget: () => undefined,
    } as unknown as DeviceDirectory,
    now: () => 1_000,
    warn: () => undefined,
  });
  service.attachLiveDelivery(async (org, deviceId) => void kicked.push(`${org}/${deviceId}`));
  return { service, requested, inserted, late, kicked, records, writeMarker, claims, forwarded, twinRecords };
}

const answer = (id: string) => ({
  version: '8.0',
  operation: {
    response: { id, name: 'REBOOT_EQUIPMENT', timestamp: 1, resultCode: 'SUCCESSFUL' },
  },
});

describe('OperationsService', () => {
  it('hands a checked request to the twin and creates its first record', async () => {
    const env = setup();
    const out = await env.service.request('o', 'user:a', 'push', { name: 'REBOOT_EQUIPMENT' });
    expect(out).toMatchObject({ ok: true, value: { status: 'QUEUED', delivery: 'push', deviceId: 'push' } });
    expect(env.requested).toHaveLength(1);
    expect(env.requested[0]).toMatchObject({
      org: 'o',
      deviceId: 'push',
      operationUrl: 'http://127.0.0.1:1/ops',
      requestedBy: 'user:a',
      createdAt: 1_000,
    });
    expect(env.inserted.map((r) => r.id)).toEqual([env.requested[0]!.id]);
    expect(env.kicked).toEqual([]);
  });

  it('sends a pending operation of an MQTT device to the live channel at once', async () => {
    const env = setup();
    const out = await env.service.request('o', 'user:a', 'sleepy', { name: 'REBOOT_EQUIPMENT' });
    expect(out).toMatchObject({ ok: true, value: { delivery: 'pending' } });
    expect(env.kicked).toEqual(['o/sleepy']);
  });

  it.each([
    ['nobody', { name: 'REBOOT_EQUIPMENT' }, 'NOT_FOUND'],
    ['retired', { name: 'REBOOT_EQUIPMENT' }, 'CONFLICT'],
    ['odd', { name: 'REBOOT_EQUIPMENT' }, 'CONFLICT'],
    ['push', { name: 'REBOOT_EQUIPMENT', parameters: 'x' }, 'INVALID_ARGUMENT'],
    ['sleepy', { name: 'REBOOT_EQUIPMENT', delivery: 'push' as const }, 'INVALID_ARGUMENT'],
  ])('refuses a request for %s (%j) with %s and asks the twin nothing', async (device, order, code) => {
    const env = setup();
    await expect(env.service.request('o', 'user:a', device, order)).resolves.toMatchObject({
      ok: false,
      code,
    });
    expect(env.requested).toHaveLength(0);
    expect(env.inserted).toHaveLength(0);
  });

  it('explains a twin that has ended by the inventory: a decommissioned device is a conflict', async () => {
    const env = setup(new RefusedError('NOT_FOUND', 'the device has no running twin'));
    await expect(
      env.service.request('o', 'user:a', 'push', { name: 'REBOOT_EQUIPMENT' }),
    ).resolves.toMatchObject({
      ok: false,
      code: 'CONFLICT',
      message: 'device push is decommissioned',
    });
    expect(env.inserted).toHaveLength(0);
  });

  it('passes on other twin refusals with their code', async () => {
    const env = setup(new RefusedError('RESOURCE_EXHAUSTED', 'queue full'));
    await expect(env.service.request('o', 'user:a', 'push', { name: 'REBOOT_EQUIPMENT' })).resolves.toEqual({
      ok: false,
      code: 'RESOURCE_EXHAUSTED',
      message: 'queue full',
    });
  });

  it('hands an answer to the running operation, counts a late one, and refuses another device', async () => {
    const env = setup();
    await expect(env.service.respond('o', 'push', answer('running-op'))).resolves.toEqual({
      ok: true,
      value: { handed: true },
    });
    env.records.set('ended-op', {
      id: 'ended-op',
      deviceId: 'push',
      status: 'SUCCESSFUL',
    } as OperationRecord);
    await expect(env.service.respond('o', 'push', answer('ended-op'))).resolves.toEqual({
      ok: true,
      value: { handed: false, id: 'ended-op', status: 'SUCCESSFUL' },
    });
    expect(env.late).toEqual(['ended-op']);
    await expect(env.service.respond('o', 'sleepy', answer('ended-op'))).resolves.toMatchObject({
      ok: false,
      code: 'PERMISSION_DENIED',
    });
    await expect(env.service.respond('o', 'push', answer('unknown-op'))).resolves.toMatchObject({
      ok: false,
      code: 'NOT_FOUND',
    });
    await expect(env.service.respond('o', 'nobody', answer('running-op'))).resolves.toMatchObject({
      ok: false,
      code: 'NOT_FOUND',
    });
    expect(env.late).toEqual(['ended-op']);
  });

  it('hands pending operations over, none to a decommissioned device, and refuses an unknown one', async () => {
    const env = setup();
    await expect(env.service.claimPending('o', 'sleepy', 500)).resolves.toEqual({
      ok: true,
      value: [{ deviceId: 'sleepy', limit: 100 }],
    });
    await expect(env.service.claimPending('o', 'retired')).resolves.toEqual({ ok: true, value: [] });
    await expect(env.service.claimPending('o', 'nobody')).resolves.toMatchObject({
      ok: false,
      code: 'NOT_FOUND',
    });
  });

  it('answers an empty poll from the twin marker without asking the twin, and asks it otherwise', async () => {
    const env = setup();
    env.writeMarker('sleepy', 0);
    await expect(env.service.claimPending('o', 'sleepy')).resolves.toEqual({ ok: true, value: [] });
    expect(env.claims).toEqual([]);
    // The view holds the device now; the next write reaches it through the feed.
    env.writeMarker('sleepy', 2);
    await expect(env.service.claimPending('o', 'sleepy')).resolves.toMatchObject({ ok: true });
    // No marker yet (a twin that has not written one): the twin decides.
    await expect(env.service.claimPending('o', 'unmarked')).resolves.toMatchObject({ ok: true });
    expect(env.claims).toEqual(['sleepy', 'unmarked']);
  });

  it('answers the record the twin wrote, and writes the first one only when the twin did not', async () => {
    const env = setup();
    const final = { id: 'x', status: 'SUCCESSFUL', rev: 5 } as OperationRecord;
    env.twinRecords.set('REBOOT_EQUIPMENT', final);
    const done = await env.service.request('o', 'user:a', 'push', {
      name: 'REBOOT_EQUIPMENT',
      delivery: 'push',
    });
    expect(done).toEqual({ ok: true, value: final });
    expect(env.inserted).toEqual([]);
    // A final record needs no wait: there is no workflow to wait for.
    await expect(env.service.awaitEnd(final, 10_000)).resolves.toEqual({ record: final, ended: true });
    env.twinRecords.clear();
    const queued = await env.service.request('o', 'user:a', 'push', {
      name: 'REBOOT_EQUIPMENT',
      delivery: 'push',
    });
    expect(queued.ok && queued.value.status).toBe('QUEUED');
    expect(env.inserted).toHaveLength(1);
  });

  it('passes a response for an operation without a workflow to the twin, and counts it late otherwise', async () => {
    const env = setup();
    env.records.set('pushing-op', {
      id: 'pushing-op',
      deviceId: 'sleepy',
      status: 'IN_PROGRESS',
    } as OperationRecord);
    await expect(env.service.respond('o', 'sleepy', answer('pushing-op'))).resolves.toEqual({
      ok: true,
      value: { handed: true },
    });
    expect(env.forwarded).toEqual(['pushing-op']);
    env.records.set('gone-op', {
      id: 'gone-op',
      deviceId: 'sleepy',
      status: 'IN_PROGRESS',
    } as OperationRecord);
    await expect(env.service.respond('o', 'sleepy', answer('gone-op'))).resolves.toMatchObject({
      ok: true,
      value: { handed: false, id: 'gone-op' },
    });
    expect(env.late).toEqual(['gone-op']);
  });

  it('refuses to cancel an unknown or ended operation', async () => {
    const env = setup();
    await expect(env.service.cancel('o', 'nope', 'user:a')).resolves.toMatchObject({
      ok: false,
      code: 'NOT_FOUND',
    });
    env.records.set('done', { id: 'done', deviceId: 'push', status: 'FAILED' } as OperationRecord);
    await expect(env.service.cancel('o', 'done', 'user:a')).resolves.toEqual({
      ok: false,
      code: 'CONFLICT',
      message: 'operation done has already ended (FAILED)',
    });
  });
});
