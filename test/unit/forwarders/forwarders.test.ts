// Forwarders' pure parts: the signature a receiver checks, and which events a subscription takes.
import type { FleetEvent } from '../../../events/event-types';
import { signBody, verifySignature } from '../../../forwarders/signing';
import { orderingKey, selectEvent } from '../../../forwarders/subscription';

const event = (over: Partial<FleetEvent>): FleetEvent => ({
  id: '1',
  seq: 1,
  org: 'acme',
  type: 'device.changed',
  deviceId: 'd1',
  at: 0,
  body: {},
  ...over,
});

describe('webhook signatures', () => {
  const body = '{"id":"1"}';
  const t = 1_700_000_000_000;

  it('verifies a signature made with the same secret over the same body', () => {
    expect(verifySignature('s3cret', signBody('s3cret', body, t), body, { now: t + 1_000 })).toBe(true);
  });

  it('refuses another secret, a changed body, a stale time and a malformed header', () => {
    const header = signBody('s3cret', body, t);
    expect(verifySignature('other', header, body, { now: t })).toBe(false);
    expect(verifySignature('s3cret', header, '{"id":"2"}', { now: t })).toBe(false);
    expect(verifySignature('s3cret', header, body, { now: t + 10 * 60_000 })).toBe(false);
    expect(verifySignature('s3cret', 'v1=abc', body, { now: t })).toBe(false);
    expect(verifySignature('s3cret', undefined, body, { now: t })).toBe(false);
    expect(verifySignature('s3cret', header.replace(`t=${t}`, `t=${t + 1}`), body, { now: t })).toBe(false);
  });
});

describe('subscriptions', () => {
  const points = event({
    type: 'datapoints',
    deviceId: undefined,
    body: {
      points: [
        { deviceId: 'd1', datastreamId: 'temperature', at: 1, value: 1 },
        { deviceId: 'd2', datastreamId: 'humidity', at: 1, value: 2 },
      ],
    },
  });

  it('takes every type but datapoints when no type is named', () => {
    expect(selectEvent(event({}), {})).toBeDefined();
    expect(selectEvent(points, {})).toBeUndefined();
  });

  it('takes only the named types and devices', () => {
    expect(selectEvent(event({}), { types: ['alarm.raised'] })).toBeUndefined();
    expect(selectEvent(event({}), { deviceIds: ['d2'] })).toBeUndefined();
    expect(selectEvent(event({ deviceId: 'd2' }), { deviceIds: ['d2'] })).toBeDefined();
  });

  it('keeps only the chosen datastreams of a datapoints batch, and nothing else', () => {
    const taken = selectEvent(points, { datastreams: ['humidity'] });
    expect(taken?.body.points).toEqual([{ deviceId: 'd2', datastreamId: 'humidity', at: 1, value: 2 }]);
    expect(selectEvent(event({}), { datastreams: ['humidity'] })).toBeUndefined();
    expect(selectEvent(points, { datastreams: ['pressure'] })).toBeUndefined();
    expect(selectEvent(points, { types: ['datapoints'], deviceIds: ['d1'] })?.body.points).toHaveLength(1);
  });

  it('orders by device; a batch of several devices has a lane of its own', () => {
    expect(orderingKey(event({ deviceId: 'd9' }))).toBe('d9');
    expect(orderingKey(points)).toBe('');
  });
});
