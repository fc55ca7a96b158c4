// Covers encodeDatastreamKey/decodeDatastreamKey: a datastream id and feed as one MongoDB/FerretDB field name.
import { decodeDatastreamKey, encodeDatastreamKey } from '../../../inventory/datastream-key';

const PAIRS: [string, string][] = [
  ['temperature', 'default'],
  ['device.model', 'default'],
  ['a.b.c', 'feed.1'],
  ['$price', '$feed'],
  ['pipe|in|id', 'pipe|feed'],
  ['100%', '%2E'],
  ['température', 'défaut'],
  ['温度', '默认'],
  ['emoji 🌡️', 'ünïcödé'],
  ['.', '.'],
  ['', ''],
  ["!'()*-_~", 'a b&c=d?e#f/g'],
];

describe('encodeDatastreamKey and decodeDatastreamKey', () => {
  it.each(PAIRS)('round-trips id %j with feed %j', (id, feed) => {
    expect(decodeDatastreamKey(encodeDatastreamKey(id, feed))).toEqual({ id, feed });
  });

  it.each(PAIRS)('encodes id %j with feed %j without a dot and without a leading $', (id, feed) => {
    const key = encodeDatastreamKey(id, feed);
    expect(key).not.toContain('.');
    expect(key.startsWith('$')).toBe(false);
    expect(key).not.toContain('\u0000');
  });

  it('keeps one separator, so pairs that concatenate alike stay distinct', () => {
    expect(encodeDatastreamKey('a|b', 'c')).not.toBe(encodeDatastreamKey('a', 'b|c'));
    expect(encodeDatastreamKey('a|b', 'c').split('|')).toHaveLength(2);
  });

  it('leaves a plain id readable', () => {
    expect(encodeDatastreamKey('temperature', 'default')).toBe('temperature|default');
    expect(encodeDatastreamKey('device.model', 'default')).toBe('device%2Emodel|default');
  });

  it('answers undefined for a key without a separator or with a broken escape', () => {
    expect(decodeDatastreamKey('temperature')).toBeUndefined();
    expect(decodeDatastreamKey('bad%E0%A4%A|default')).toBeUndefined();
    expect(decodeDatastreamKey('ok|%zz')).toBeUndefined();
  });
});
