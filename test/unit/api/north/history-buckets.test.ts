// Covers time buckets: duration parsing and the aggregation over [from, to).
import { aggregateBuckets, bucketCount, parseDuration } from '../../../../api/north/history-buckets';

const points = [
  { at: 0, value: 1 },
  { at: 30_000, value: 3 },
  { at: 59_999, value: 'on' },
  { at: 60_000, value: 10 },
  { at: 150_000, value: { x: 1 } },
  { at: 179_999, value: -2 },
  { at: 180_000, value: 100 }, // at `to`: outside
];
const o = { from: 0, to: 180_000, bucketMs: 60_000 };

describe('parseDuration', () => {
  it.each([
    ['60000', 60_000],
    ['250ms', 250],
    ['60s', 60_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
  ])('reads %s as %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', '0', '0s', '-5m', '1.5h', '5w', '1 h', 'h', '1e3', '9999999999999'])('refuses %j', (text) =>
    expect(parseDuration(text)).toBeUndefined(),
  );
});

describe('aggregateBuckets', () => {
  it('averages numbers per bucket, leaving out other values and empty buckets', () => {
    expect(aggregateBuckets(points, { ...o, agg: 'avg' })).toEqual([
      { start: 0, end: 60_000, value: 2, count: 2 },
      { start: 60_000, end: 120_000, value: 10, count: 1 },
      { start: 120_000, end: 180_000, value: -2, count: 1 },
    ]);
  });

  it('takes min, max and sum of numbers', () => {
    expect(aggregateBuckets(points, { ...o, agg: 'min' }).map((b) => b.value)).toEqual([1, 10, -2]);
    expect(aggregateBuckets(points, { ...o, agg: 'max' }).map((b) => b.value)).toEqual([3, 10, -2]);
    expect(aggregateBuckets(points, { ...o, agg: 'sum' }).map((b) => b.value)).toEqual([4, 10, -2]);
  });

  it('counts every point, numeric or not', () => {
    expect(aggregateBuckets(points, { ...o, agg: 'count' })).toEqual([
      { start: 0, end: 60_000, value: 3, count: 3 },
      { start: 60_000, end: 120_000, value: 1, count: 1 },
      { start: 120_000, end: 180_000, value: 2, count: 2 },
    ]);
  });

  it('aligns buckets on `from` and cuts the last one at `to`', () => {
    const res = aggregateBuckets(points, { from: 30_000, to: 100_000, bucketMs: 60_000, agg: 'count' });
    expect(res).toEqual([{ start: 30_000, end: 90_000, value: 3, count: 3 }]);
    expect(bucketCount({ from: 30_000, to: 100_000, bucketMs: 60_000 })).toBe(2);
  });

  it('ignores NaN and infinities as numbers and gives nothing for no points', () => {
    const odd = [
      { at: 1, value: Number.NaN },
      { at: 2, value: Number.POSITIVE_INFINITY },
      { at: 3, value: 4 },
    ];
    expect(aggregateBuckets(odd, { ...o, agg: 'sum' })).toEqual([
      { start: 0, end: 60_000, value: 4, count: 1 },
    ]);
    expect(aggregateBuckets([], { ...o, agg: 'avg' })).toEqual([]);
  });
});
