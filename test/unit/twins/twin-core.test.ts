// Covers the twin's pure core: createTwinState, decide (telemetry, profile, decommission), validateProfilePatch, toSnapshot, describeTwin.
// The core is given its twin type; an unknown type name is refused by resolveTwinType (registry.test.ts).
import {
  type ProfilePatch,
  type TelemetryBatch,
  type TwinInput,
  type TwinState,
  MAX_ATTRIBUTES,
  MAX_TAGS,
  RECENT_BATCH_IDS,
  createTwinState,
  decide as decideWithType,
  describeTwin,
  toSnapshot,
} from '../../../twins/twin-core';
import { validateProfilePatch } from '../../../twins/twin-validators';
import type { TwinType } from '../../../twins/define-twin';
import { resolveTwinType } from '../../../twins/registry';
import type { Datapoint, DeviceProfile, Result, TwinIdentity } from '../../../twins/types';

const T0 = 1_700_000_000_000;
const GENERIC: TwinIdentity = { org: 'acme', deviceId: 'dev-1', twinType: 'generic' };
const METER: TwinIdentity = { org: 'acme', deviceId: 'meter-1', twinType: 'electricity-meter' };
const EMPTY_PROFILE: DeviceProfile = { tags: [], attributes: {} };

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.value;
}

/** The type the registry knows by the identity's name, as the twin workflow looks it up once per run. */
const typeOf = (identity: TwinIdentity): TwinType => unwrap(resolveTwinType(identity.twinType));

const newTwin = (identity: TwinIdentity = GENERIC, profile: DeviceProfile = EMPTY_PROFILE): TwinState =>
  createTwinState(typeOf(identity), identity, profile, T0);

/** The core with the twin's own type, as the workflow passes it. */
const decide = (state: TwinState, input: TwinInput, now: number) =>
  decideWithType(typeOf(state.identity), state, input, now);

const dp = (datastreamId: string, value: unknown, at: number, feed = 'default'): Datapoint => ({
  datastreamId,
  feed,
  value,
  at,
});

const telemetry = (
  batchId: string,
  datapoints: Datapoint[],
  receivedAt = T0 + 1_000,
  storedCount = datapoints.length,
): TwinInput => ({
  kind: 'telemetry',
  batch: { batchId, channel: 'http', receivedAt, datapoints, storedCount } satisfies TelemetryBatch,
});

const patch = (p: ProfilePatch): TwinInput => ({ kind: 'updateProfile', patch: p });

describe('createTwinState', () => {
  it('starts an active twin at version 1 with no data and the type status', () => {
    const state = newTwin(GENERIC, { name: 'Dev 1', tags: ['a'], attributes: { floor: 2 } });
    expect(state).toMatchObject({
      identity: GENERIC,
      profile: { name: 'Dev 1', tags: ['a'], attributes: { floor: 2 } },
      lifecycle: 'ACTIVE',
      reported: [],
      status: 'ACTIVE',
      connectivity: { lastSeenAt: null, channel: null },
      counters: { batches: 0, datapoints: 0, duplicateBatches: 0, staleDatapoints: 0, attributeChanges: 0 },
      recentBatchIds: [],
      version: 1,
      createdAt: T0,
      updatedAt: T0,
    });
  });

  it('uses the twin type initial state and status for an electricity meter', () => {
    const state = newTwin(METER);
    expect(state.status).toBe('NO_DATA');
    expect(state.typeState).toMatchObject({
      energyKWh: null,
      powerW: null,
      voltageV: null,
      registerResets: 0,
    });
  });

  it('copies the profile so later changes to the caller object do not leak in', () => {
    const tags = ['a'];
    const attributes: Record<string, string> = { k: 'v' };
    const state = newTwin(GENERIC, { tags, attributes });
    tags.push('b');
    attributes.k2 = 'v2';
    expect(state.profile).toEqual({ tags: ['a'], attributes: { k: 'v' } });
  });
});

describe('decide', () => {
  describe('with telemetry', () => {
    it('keeps the latest value per datastream and feed, sorted by id then feed', () => {
      const state = newTwin();
      const { state: next } = unwrap(
        decide(
          state,
          telemetry('b1', [
            dp('temperature', 21, T0 + 10),
            dp('temperature', 22, T0 + 20),
            dp('temperature', 5, T0 + 15, 'backup'),
            dp('humidity', 40, T0 + 10),
          ]),
          T0 + 2_000,
        ),
      );
      expect(next.reported).toEqual([
        { id: 'humidity', feed: 'default', value: 40, at: T0 + 10 },
        { id: 'temperature', feed: 'backup', value: 5, at: T0 + 15 },
        { id: 'temperature', feed: 'default', value: 22, at: T0 + 20 },
      ]);
    });

    it('applies datapoints oldest first, whatever their order in the batch', () => {
      const { state } = unwrap(
        decide(newTwin(), telemetry('b1', [dp('t', 'newest', T0 + 30), dp('t', 'oldest', T0 + 10)]), T0),
      );
      expect(state.reported).toEqual([{ id: 't', feed: 'default', value: 'newest', at: T0 + 30 }]);
      expect(state.counters.staleDatapoints).toBe(0);
    });

    it('updates connectivity, counters, version and updatedAt, and asks to publish a snapshot', () => {
      const state = newTwin();
      const decision = unwrap(decide(state, telemetry('b1', [dp('t', 1, T0)], T0 + 500, 7), T0 + 600));
      expect(decision.effects).toEqual([{ kind: 'publishSnapshot', urgent: true }]);
      // First contact is urgent (lists show the device as seen); later data that change no status are routine.
      const later = unwrap(decide(decision.state, telemetry('b2', [dp('t', 2, T0 + 1)], T0 + 700), T0 + 800));
      expect(later.effects).toEqual([{ kind: 'publishSnapshot', urgent: false }]);
      expect(decision.state.connectivity).toEqual({ lastSeenAt: T0 + 500, channel: 'http' });
      expect(decision.state.counters).toMatchObject({ batches: 1, datapoints: 7 });
      expect(decision.state.version).toBe(state.version + 1);
      expect(decision.state.updatedAt).toBe(T0 + 600);
      expect(decision.state.recentBatchIds).toEqual(['b1']);
    });

    it('counts at least the datapoints in the batch when storedCount is lower', () => {
      const { state } = unwrap(
        decide(newTwin(), telemetry('b1', [dp('a', 1, T0), dp('b', 2, T0)], T0, 0), T0),
      );
      expect(state.counters.datapoints).toBe(2);
    });

    it('never moves lastSeenAt backwards when a batch received earlier arrives late', () => {
      const first = unwrap(
        decide(newTwin(), telemetry('b1', [dp('t', 1, T0)], T0 + 5_000), T0 + 5_000),
      ).state;
      const second = unwrap(
        decide(first, telemetry('b2', [dp('t', 2, T0 + 1)], T0 + 1_000), T0 + 6_000),
      ).state;
      expect(second.connectivity.lastSeenAt).toBe(T0 + 5_000);
    });

    it('counts a datapoint older than the known value as stale and keeps the known value', () => {
      const first = unwrap(decide(newTwin(), telemetry('b1', [dp('t', 'new', T0 + 100)]), T0)).state;
      const second = unwrap(
        decide(first, telemetry('b2', [dp('t', 'old', T0 + 50), dp('u', 1, T0 + 50)]), T0),
      ).state;
      expect(second.counters.staleDatapoints).toBe(1);
      expect(second.reported).toEqual([
        { id: 't', feed: 'default', value: 'new', at: T0 + 100 },
        { id: 'u', feed: 'default', value: 1, at: T0 + 50 },
      ]);
    });

    it('replaces the known value with a datapoint of the same time', () => {
      const first = unwrap(decide(newTwin(), telemetry('b1', [dp('t', 'a', T0)]), T0)).state;
      const second = unwrap(decide(first, telemetry('b2', [dp('t', 'b', T0)]), T0)).state;
      expect(second.reported[0]?.value).toBe('b');
      expect(second.counters.staleDatapoints).toBe(0);
    });

    it('changes nothing but duplicateBatches when a batchId is seen again', () => {
      const first = unwrap(decide(newTwin(), telemetry('b1', [dp('t', 1, T0)]), T0)).state;
      const decision = unwrap(decide(first, telemetry('b1', [dp('t', 2, T0 + 100)], T0 + 9_000), T0 + 9_000));
      expect(decision.effects).toEqual([]);
      expect(decision.state).toEqual({ ...first, counters: { ...first.counters, duplicateBatches: 1 } });
    });

    it('keeps recentBatchIds bounded at RECENT_BATCH_IDS, dropping the oldest', () => {
      let state = newTwin();
      const total = RECENT_BATCH_IDS + 10;
      for (let i = 0; i < total; i++)
        state = unwrap(decide(state, telemetry(`b${i}`, [dp('t', i, T0 + i)]), T0 + i)).state;
      expect(state.recentBatchIds).toHaveLength(RECENT_BATCH_IDS);
      expect(state.recentBatchIds[0]).toBe('b10');
      expect(state.recentBatchIds.at(-1)).toBe(`b${total - 1}`);
      // A batch id that fell out of the window is no longer recognised as a duplicate.
      const replay = unwrap(decide(state, telemetry('b0', [dp('t', 0, T0)]), T0)).state;
      expect(replay.counters.duplicateBatches).toBe(0);
      expect(replay.counters.batches).toBe(total + 1);
    });

    it('yields statusChanged before publishSnapshot when the type status changes', () => {
      const meter = newTwin(METER);
      const ok = unwrap(
        decide(meter, telemetry('b1', [dp('voltage', 230, T0), dp('power.active', 500, T0)]), T0),
      );
      expect(ok.state.status).toBe('OK');
      expect(ok.effects).toEqual([
        { kind: 'statusChanged', from: 'NO_DATA', to: 'OK' },
        { kind: 'publishSnapshot', urgent: true },
      ]);

      const overload = unwrap(
        decide(ok.state, telemetry('b2', [dp('power.active', 12_000, T0 + 1)]), T0 + 1),
      );
      expect(overload.effects).toEqual([
        { kind: 'statusChanged', from: 'OK', to: 'OVERLOAD' },
        { kind: 'publishSnapshot', urgent: true },
      ]);

      const still = unwrap(
        decide(overload.state, telemetry('b3', [dp('power.active', 13_000, T0 + 2)]), T0 + 2),
      );
      expect(still.effects).toEqual([{ kind: 'publishSnapshot', urgent: false }]);
    });

    it('does not let a stale datapoint change the type state', () => {
      const ok = unwrap(decide(newTwin(METER), telemetry('b1', [dp('voltage', 230, T0 + 100)]), T0)).state;
      const after = unwrap(decide(ok, telemetry('b2', [dp('voltage', 0, T0 + 50)]), T0)).state;
      expect(after.status).toBe('OK');
      expect(after.typeState).toEqual(ok.typeState);
    });

    it('keeps a datastream id with dots and an object value as it is', () => {
      const model = { name: 'X', manufacturer: 'Y', nested: { 'a.b': 1 } };
      const { state } = unwrap(decide(newTwin(), telemetry('b1', [dp('device.model', model, T0)]), T0));
      expect(state.reported).toEqual([{ id: 'device.model', feed: 'default', value: model, at: T0 }]);
      expect(state.typeState).toEqual({ datastreams: ['device.model'] });
    });

    it('increases the version on every change', () => {
      let state = newTwin();
      const versions = [state.version];
      state = unwrap(decide(state, telemetry('b1', [dp('t', 1, T0)]), T0)).state;
      versions.push(state.version);
      state = unwrap(decide(state, patch({ name: 'n' }), T0)).state;
      versions.push(state.version);
      state = unwrap(decide(state, { kind: 'decommission' }, T0)).state;
      versions.push(state.version);
      expect(versions).toEqual([1, 2, 3, 4]);
    });
  });

  describe('with a profile patch', () => {
    const base = newTwin(GENERIC, {
      name: 'Old',
      tags: ['x'],
      attributes: { floor: 1, room: 'a', keep: true },
    });

    it('sets and removes attributes, null meaning remove', () => {
      const decision = unwrap(
        decide(base, patch({ attributes: { floor: 2, room: null, site: 'north' } }), T0 + 1),
      );
      expect(decision.state.profile.attributes).toEqual({ floor: 2, keep: true, site: 'north' });
      expect(decision.state.counters.attributeChanges).toBe(1);
      expect(decision.state.version).toBe(base.version + 1);
      expect(decision.state.updatedAt).toBe(T0 + 1);
      expect(decision.effects).toEqual([{ kind: 'publishSnapshot', urgent: true }]);
    });

    it('removes the name when it is null and keeps it when it is absent', () => {
      expect(unwrap(decide(base, patch({ name: null }), T0)).state.profile.name).toBeUndefined();
      expect(unwrap(decide(base, patch({ tags: ['y'] }), T0)).state.profile.name).toBe('Old');
      expect(unwrap(decide(base, patch({ name: 'New' }), T0)).state.profile.name).toBe('New');
    });

    it('removes duplicate tags, keeping their first order', () => {
      const { state } = unwrap(decide(base, patch({ tags: ['b', 'a', 'b', 'c', 'a'] }), T0));
      expect(state.profile.tags).toEqual(['b', 'a', 'c']);
    });

    it('keeps tags and attributes that the patch does not mention', () => {
      const { state } = unwrap(decide(base, patch({ name: 'Renamed' }), T0));
      expect(state.profile).toEqual({
        name: 'Renamed',
        tags: ['x'],
        attributes: { floor: 1, room: 'a', keep: true },
      });
    });

    it('does not change the state it was given', () => {
      const before = structuredClone(base);
      unwrap(decide(base, patch({ attributes: { floor: null, extra: 1 }, tags: [] }), T0));
      expect(base).toEqual(before);
    });

    it('fails with INVALID_ARGUMENT when the patch would exceed MAX_ATTRIBUTES', () => {
      // base already has three attributes: together with these it reaches the limit exactly.
      const many = Object.fromEntries(Array.from({ length: MAX_ATTRIBUTES - 3 }, (_, i) => [`a${i}`, i]));
      expect(decide(base, patch({ attributes: many }), T0)).toMatchObject({ ok: true });
      expect(decide(base, patch({ attributes: { ...many, one: 1 } }), T0)).toMatchObject({
        ok: false,
        code: 'INVALID_ARGUMENT',
      });
    });

    it('fails with INVALID_ARGUMENT for a patch that does not validate', () => {
      expect(decide(base, patch({ attributes: { 'bad key': 1 } }), T0)).toMatchObject({
        ok: false,
        code: 'INVALID_ARGUMENT',
      });
    });
  });

  describe('with decommission', () => {
    it('ends the twin with a statusChanged effect and a snapshot', () => {
      const meter = newTwin(METER);
      const decision = unwrap(decide(meter, { kind: 'decommission' }, T0 + 5));
      expect(decision.state).toMatchObject({
        lifecycle: 'DECOMMISSIONED',
        status: 'DECOMMISSIONED',
        version: 2,
        updatedAt: T0 + 5,
      });
      expect(decision.effects).toEqual([
        { kind: 'statusChanged', from: 'NO_DATA', to: 'DECOMMISSIONED' },
        { kind: 'publishSnapshot', urgent: true },
      ]);
    });

    it.each<[string, TwinInput]>([
      ['telemetry', telemetry('b1', [dp('t', 1, T0)])],
      ['a profile patch', patch({ name: 'x' })],
      ['a second decommission', { kind: 'decommission' }],
    ])('refuses %s afterwards with code DECOMMISSIONED', (_label, input) => {
      const gone = unwrap(decide(newTwin(), { kind: 'decommission' }, T0)).state;
      expect(decide(gone, input, T0 + 1)).toMatchObject({ ok: false, code: 'DECOMMISSIONED' });
    });
  });
});

describe('validateProfilePatch', () => {
  it('accepts a well-formed patch and answers it unchanged', () => {
    const p: ProfilePatch = {
      name: 'n',
      tags: ['a', 'b'],
      attributes: { _x: 'y', 'Floor-2': 3, on: false, gone: null },
    };
    expect(validateProfilePatch(p)).toEqual({ ok: true, value: p });
  });

  it('accepts an empty patch', () => {
    expect(validateProfilePatch({})).toMatchObject({ ok: true });
  });

  it.each(['bad key', '1starts-with-digit', '', 'dot.ted', '$dollar', 'x'.repeat(65)])(
    'rejects the attribute key %j',
    (key) => {
      expect(validateProfilePatch({ attributes: { [key]: 1 } })).toMatchObject({
        ok: false,
        code: 'INVALID_ARGUMENT',
      });
    },
  );

  it('rejects more than MAX_TAGS tags', () => {
    const tags = Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`);
    expect(validateProfilePatch({ tags: tags.slice(0, MAX_TAGS) })).toMatchObject({ ok: true });
    expect(validateProfilePatch({ tags })).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
  });

  it('rejects an empty tag and a tag longer than 64 characters', () => {
    expect(validateProfilePatch({ tags: [''] })).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
    expect(validateProfilePatch({ tags: ['x'.repeat(65)] })).toMatchObject({
      ok: false,
      code: 'INVALID_ARGUMENT',
    });
  });

  it.each<[string, unknown]>([
    ['an object', { nested: true }],
    ['an array', [1, 2]],
  ])('rejects an attribute value that is %s', (_label, value) => {
    const result = validateProfilePatch({ attributes: { k: value } } as unknown as ProfilePatch);
    expect(result).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
  });

  it('rejects an attribute string longer than 1024 characters', () => {
    expect(validateProfilePatch({ attributes: { k: 'x'.repeat(1024) } })).toMatchObject({ ok: true });
    expect(validateProfilePatch({ attributes: { k: 'x'.repeat(1025) } })).toMatchObject({
      ok: false,
      code: 'INVALID_ARGUMENT',
    });
  });

  it('rejects a name that is not a string or is longer than 200 characters', () => {
    expect(validateProfilePatch({ name: 42 } as unknown as ProfilePatch)).toMatchObject({
      ok: false,
      code: 'INVALID_ARGUMENT',
    });
    expect(validateProfilePatch({ name: 'x'.repeat(201) })).toMatchObject({
      ok: false,
      code: 'INVALID_ARGUMENT',
    });
  });
});

describe('toSnapshot', () => {
  it('carries what the read model needs and leaves out the latest values and batch ids', () => {
    const state = unwrap(
      decide(newTwin(METER), telemetry('b1', [dp('voltage', 230, T0)], T0 + 7), T0 + 8),
    ).state;
    const snapshot = toSnapshot(state);
    expect(snapshot).toEqual({
      version: 2,
      twinType: 'electricity-meter',
      alarms: { active: 0, unacknowledged: 0, highestSeverity: 'NONE' },
      lifecycle: 'ACTIVE',
      status: 'OK',
      profile: state.profile,
      typeState: state.typeState,
      connectivity: { lastSeenAt: T0 + 7, channel: 'http' },
      counters: state.counters,
      operations: { open: 0, waiting: 0 },
      updatedAt: T0 + 8,
    });
    expect(snapshot).not.toHaveProperty('reported');
    expect(snapshot).not.toHaveProperty('recentBatchIds');
  });
});

describe('describeTwin', () => {
  it('says a new twin was never seen', () => {
    expect(describeTwin(newTwin())).toBe(
      'dev-1 (generic) · ACTIVE · never seen · 0 datapoints · 0 datastreams · 0 open operations (0 waiting)',
    );
  });

  it('says when and how the device was last seen and how much it sent', () => {
    const state = unwrap(
      decide(newTwin(), telemetry('b1', [dp('a', 1, T0), dp('b', 2, T0)], T0, 5), T0),
    ).state;
    expect(describeTwin(state)).toBe(
      `dev-1 (generic) · ACTIVE · last seen ${new Date(T0).toISOString()} via http · 5 datapoints · 2 datastreams · 0 open operations (0 waiting)`,
    );
  });
});
