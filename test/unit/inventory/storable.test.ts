// Covers storable values: which device values MongoDB/FerretDB can keep as documents, and the JSON fallback.
import {
  MAX_STORED_DEPTH,
  fromStoredValue,
  isStorableAsIs,
  toStoredValue,
} from '../../../inventory/storable';

/** An object nested `depth` levels deep: {a: {a: ... 1}}. */
const nested = (depth: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
};

describe('isStorableAsIs', () => {
  it.each<[string, unknown]>([
    ['a number', 21.5],
    ['a string', 'x.y'],
    ['a boolean', true],
    ['null', null],
    ['an array', [1, 'a', null]],
    ['an object with plain keys', { name: 'X', manufacturer: 'Y', 'with-dash': 1, a$b: 2 }],
    ['nesting just under the limit', nested(MAX_STORED_DEPTH - 1)],
  ])('accepts %s', (_label, value) => {
    expect(isStorableAsIs(value)).toBe(true);
  });

  it.each<[string, unknown]>([
    ['a dotted key', { 'a.b': 1 }],
    ['a dotted key deep inside an array', [{ ok: [{ 'x.y': 1 }] }]],
    ['a key starting with $', { $set: 1 }],
    ['an empty key', { '': 1 }],
    ['a key with a NUL', { 'a\u0000b': 1 }],
    ['nesting beyond the limit', nested(MAX_STORED_DEPTH + 5)],
    [
      'arrays nested beyond the limit',
      JSON.parse(`${'['.repeat(MAX_STORED_DEPTH + 1)}${']'.repeat(MAX_STORED_DEPTH + 1)}`),
    ],
  ])('refuses %s', (_label, value) => {
    expect(isStorableAsIs(value)).toBe(false);
  });
});

describe('toStoredValue and fromStoredValue', () => {
  it.each<[string, unknown]>([
    ['a number', 21.5],
    ['a string', 'hello'],
    ['a boolean', false],
    ['null', null],
    ['an object', { name: 'X', manufacturer: 'Y' }],
    ['an array', [1, { a: 2 }]],
  ])('stores %s as it is', (_label, value) => {
    const stored = toStoredValue(value);
    expect(stored).toEqual({ value });
    expect(stored).not.toHaveProperty('valueJson');
    expect(fromStoredValue(stored)).toEqual(value);
  });

  it.each<[string, unknown]>([
    ['dotted keys', { 'device.model': { 'v.1': 'x' } }],
    ['$ keys', { $where: 'x', nested: [{ $ref: 1 }] }],
    ['too-deep nesting', nested(MAX_STORED_DEPTH + 10)],
  ])('keeps a value with %s as JSON text and reads it back equal', (_label, value) => {
    const stored = toStoredValue(value);
    expect(stored).not.toHaveProperty('value');
    expect(typeof stored.valueJson).toBe('string');
    expect(fromStoredValue(stored)).toEqual(value);
  });

  it('reads a stored JSON text in preference to a value', () => {
    expect(fromStoredValue({ valueJson: '{"a.b":1}', value: 'ignored' })).toEqual({ 'a.b': 1 });
  });
});
