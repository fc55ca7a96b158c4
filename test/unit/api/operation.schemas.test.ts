// Covers the north API operation schemas: the create body, the list cursor and the operation id pattern.
import {
  OPERATION_ID_PATTERN,
  createOperationSchema,
  decodeOperationCursor,
  encodeOperationCursor,
} from '../../../api/north/operation.schemas';

const HOUR = 3_600_000;
const parses = (body: unknown): boolean => createOperationSchema.safeParse(body).success;

describe('createOperationSchema', () => {
  it('accepts a body with only a name', () => {
    expect(createOperationSchema.parse({ name: 'REBOOT_EQUIPMENT' })).toEqual({ name: 'REBOOT_EQUIPMENT' });
  });

  it('accepts every field at a valid value', () => {
    const body = {
      name: 'UPDATE',
      parameters: { deploymentElements: [] },
      timeoutMs: 30_000,
      ttlMs: HOUR,
      retries: 2,
      retriesDelayMs: 0,
      retryResultList: ['ERROR_PROCESSING'],
      delivery: 'pending',
    };
    expect(createOperationSchema.parse(body)).toEqual(body);
  });

  it('accepts parameters in the legacy list form', () => {
    expect(parses({ name: 'X', parameters: [{ name: 'a', value: { string: 'b' } }] })).toBe(true);
  });

  it('rejects a field it does not know', () => {
    expect(parses({ name: 'X', priority: 1 })).toBe(false);
  });

  it('rejects a body without a name', () => {
    expect(parses({ parameters: {} })).toBe(false);
  });

  it.each(['reboot', 'Reboot', '_X', '1X', 'A-B', '', `A${'B'.repeat(64)}`])(
    'rejects the name %j',
    (name) => {
      expect(parses({ name })).toBe(false);
    },
  );

  it.each(['A', 'REBOOT_EQUIPMENT', 'SET_2', `A${'B'.repeat(63)}`])('accepts the name %j', (name) => {
    expect(parses({ name })).toBe(true);
  });

  it.each([
    ['timeoutMs', 100, 7 * 24 * HOUR],
    ['ttlMs', 100, 30 * 24 * HOUR],
    ['retries', 0, 10],
    ['retriesDelayMs', 0, 24 * HOUR],
  ])('bounds %s to %p..%p whole numbers', (field, min, max) => {
    expect(parses({ name: 'X', [field]: min })).toBe(true);
    expect(parses({ name: 'X', [field]: max })).toBe(true);
    expect(parses({ name: 'X', [field]: min - 1 })).toBe(false);
    expect(parses({ name: 'X', [field]: max + 1 })).toBe(false);
    expect(parses({ name: 'X', [field]: min + 0.5 })).toBe(false);
    expect(parses({ name: 'X', [field]: String(min) })).toBe(false);
  });

  it.each(['auto', 'push', 'pending'])('accepts the delivery %j', (delivery) => {
    expect(parses({ name: 'X', delivery })).toBe(true);
  });

  it.each(['PUSH', 'poll', ''])('rejects the delivery %j', (delivery) => {
    expect(parses({ name: 'X', delivery })).toBe(false);
  });

  it('rejects parameters that are neither an object nor a list, and a list of more than 256', () => {
    expect(parses({ name: 'X', parameters: 'a=1' })).toBe(false);
    expect(parses({ name: 'X', parameters: Array.from({ length: 257 }, () => ({})) })).toBe(false);
    expect(parses({ name: 'X', parameters: Array.from({ length: 256 }, () => ({})) })).toBe(true);
  });

  it('rejects an empty result code in retryResultList and more than 16 codes', () => {
    expect(parses({ name: 'X', retryResultList: [''] })).toBe(false);
    expect(parses({ name: 'X', retryResultList: Array.from({ length: 17 }, (_, i) => `C${i}`) })).toBe(false);
  });
});

describe('operation cursor', () => {
  it('decodes what it encodes', () => {
    const after = { createdAt: 1_700_000_000_123, id: '0f8fad5b-d9cb-469f-a165-70867728950e' };
    const cursor = encodeOperationCursor(after);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeOperationCursor(cursor)).toEqual(after);
  });

  it('round-trips a zero time', () => {
    expect(decodeOperationCursor(encodeOperationCursor({ createdAt: 0, id: 'a' }))).toEqual({
      createdAt: 0,
      id: 'a',
    });
  });

  it.each([
    ['garbage', '!!!not-a-cursor!!!'],
    ['an empty string', ''],
    ['plain text', 'hello'],
    ['no id', Buffer.from('123:', 'utf8').toString('base64url')],
    ['no time', Buffer.from(':abc', 'utf8').toString('base64url')],
    ['a negative time', Buffer.from('-1:abc', 'utf8').toString('base64url')],
    ['a time of 17 digits', Buffer.from(`${'1'.repeat(17)}:abc`, 'utf8').toString('base64url')],
    ['an id with a slash', Buffer.from('123:a/b', 'utf8').toString('base64url')],
    ['an id with a dollar', Buffer.from('123:$ne', 'utf8').toString('base64url')],
    ['trailing text', Buffer.from('123:abc\nx', 'utf8').toString('base64url')],
  ])('rejects %s', (_what, cursor) => {
    expect(decodeOperationCursor(cursor)).toBeUndefined();
  });
});

describe('OPERATION_ID_PATTERN', () => {
  it.each(['0f8fad5b-d9cb-469f-a165-70867728950e', 'a', 'A1-b2', 'x'.repeat(64)])('accepts %j', (id) => {
    expect(OPERATION_ID_PATTERN.test(id)).toBe(true);
  });

  it.each(['../x', 'a/b', '$ne', '', '-lead', 'a.b', 'a b', 'x'.repeat(65), 'a\n'])('rejects %j', (id) => {
    expect(OPERATION_ID_PATTERN.test(id)).toBe(false);
  });
});
