// The transform output contract: what passes, what is refused and with which message.
import { toCollectBody } from '../../../functions/output';

describe('transform output', () => {
  it('groups datapoints by datastream and feed, keeping times', () => {
    const out = toCollectBody([
      { id: 'a', value: 1, at: 5 },
      { id: 'a', value: 2, at: 6, from: 1 },
      { id: 'a', value: 3, feed: 'raw' },
      { id: 'b', value: { x: 1 } },
    ]);
    expect(out).toEqual({
      ok: true,
      datapoints: expect.any(Array),
      body: {
        version: '1.0.0',
        datastreams: [
          {
            id: 'a',
            datapoints: [
              { value: 1, at: 5 },
              { value: 2, at: 6, from: 1 },
            ],
          },
          { id: 'a', feed: 'raw', datapoints: [{ value: 3 }] },
          { id: 'b', datapoints: [{ value: { x: 1 } }] },
        ],
      },
    });
  });

  it('answers an empty list as nothing to store', () => {
    expect(toCollectBody([])).toEqual({ ok: true, datapoints: [], body: null });
  });

  it.each([
    ['an object instead of a list', { temperature: 1 }, /must return/],
    ['a missing value', [{ id: 'a' }], /0\.value/],
    ['a null value', [{ id: 'a', value: null }], /0\.value/],
    ['an unknown key', [{ id: 'a', value: 1, unit: 'C' }], /unit/],
    ['an empty id', [{ id: '', value: 1 }], /0\.id/],
    ['a control character in an id', [{ id: 'a\u0001', value: 1 }], /control characters/],
    ['a lone surrogate in a feed', [{ id: 'a', value: 1, feed: '\uD800' }], /well-formed Unicode/],
    ['a time in seconds as a fraction', [{ id: 'a', value: 1, at: 1.5 }], /0\.at/],
    [
      'a time past year 2500',
      [{ id: 'a', value: 1, at: 99_999_999_999_999 }],
      /milliseconds since the Unix epoch/,
    ],
    [
      'more than 500 datastreams',
      Array.from({ length: 501 }, (_, i) => ({ id: `d${i}`, value: i })),
      /datastreams/,
    ],
  ])('refuses %s with a message', (_name, output, message) => {
    const out = toCollectBody(output);
    expect(out.ok).toBe(false);
    expect(!out.ok && out.error).toMatch(message);
  });
});
