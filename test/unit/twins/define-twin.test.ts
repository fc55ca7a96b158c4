// Covers defineTwin: validation of a twin type declaration and its defaults.
import {
  type TwinTypeSpec,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_SIGNAL_DELAY_MS,
  defineTwin,
} from '../../../twins/define-twin';
import type { Datapoint, LatestValue } from '../../../twins/types';

const spec = (overrides: Partial<TwinTypeSpec<{ n: number }>> = {}): TwinTypeSpec<{ n: number }> => ({
  name: 'counter',
  description: 'counts datapoints',
  initialState: () => ({ n: 0 }),
  applyDatapoint: (s) => ({ n: s.n + 1 }),
  status: (s) => (s.n > 0 ? 'ACTIVE' : 'IDLE'),
  ...overrides,
});

const dp: Datapoint = { datastreamId: 'temperature', feed: 'default', value: 20, at: 1 };
const previous: LatestValue = { id: 'temperature', feed: 'default', value: 19, at: 0 };

describe('defineTwin', () => {
  it('answers a frozen type that behaves as declared', () => {
    const type = defineTwin(spec());
    expect(Object.isFrozen(type)).toBe(true);
    expect(type.name).toBe('counter');
    expect(type.status(type.applyDatapoint(type.initialState(), dp))).toBe('ACTIVE');
  });

  it.each(['Counter', '1counter', '', 'has space', 'under_score', '-lead', 'a'.repeat(64)])(
    'rejects the name %j',
    (name) => {
      expect(() => defineTwin(spec({ name }))).toThrow(/twin type name/);
    },
  );

  it('accepts a name of 63 characters', () => {
    expect(defineTwin(spec({ name: 'a'.repeat(63) })).name).toHaveLength(63);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('rejects maxSignalDelayMs %p', (maxSignalDelayMs) => {
    expect(() => defineTwin(spec({ maxSignalDelayMs }))).toThrow(/maxSignalDelayMs/);
  });

  it('defaults maxSignalDelayMs to DEFAULT_MAX_SIGNAL_DELAY_MS and accepts zero', () => {
    expect(defineTwin(spec()).maxSignalDelayMs).toBe(DEFAULT_MAX_SIGNAL_DELAY_MS);
    expect(DEFAULT_MAX_SIGNAL_DELAY_MS).toBe(5_000);
    expect(defineTwin(spec({ maxSignalDelayMs: 0 })).maxSignalDelayMs).toBe(0);
  });

  it.each([
    ['negative', { heartbeatMs: -1 }],
    ['not a number', { heartbeatMs: Number.NaN }],
    ['endless', { heartbeatMs: Number.POSITIVE_INFINITY }],
    ['shorter than maxSignalDelayMs', { maxSignalDelayMs: 10_000, heartbeatMs: 5_000 }],
  ])('rejects a heartbeatMs that is %s', (_label, fields) => {
    expect(() => defineTwin(spec(fields))).toThrow(/heartbeatMs/);
  });

  it('defaults heartbeatMs to 60 s, or to maxSignalDelayMs when that is longer', () => {
    expect(defineTwin(spec()).heartbeatMs).toBe(DEFAULT_HEARTBEAT_MS);
    expect(DEFAULT_HEARTBEAT_MS).toBe(60_000);
    expect(defineTwin(spec({ maxSignalDelayMs: 90_000 })).heartbeatMs).toBe(90_000);
    expect(defineTwin(spec({ heartbeatMs: 5_000 })).heartbeatMs).toBe(5_000);
  });

  it('by default treats an unseen datastream as significant and a known one as not', () => {
    const type = defineTwin(spec());
    expect(type.isSignificant(dp, undefined)).toBe(true);
    expect(type.isSignificant(dp, previous)).toBe(false);
  });

  it('keeps a declared isSignificant', () => {
    const type = defineTwin(spec({ isSignificant: () => false }));
    expect(type.isSignificant(dp, undefined)).toBe(false);
  });
});
