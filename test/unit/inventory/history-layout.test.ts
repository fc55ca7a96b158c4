// Covers the history layout: chunk and marker ids, their time order, and the periods a read walks.
import {
  LEVEL_MS,
  chunkId,
  periodId,
  periodOf,
  periodsNewestFirst,
  seriesPrefix,
} from '../../../inventory/history-layout';

const series = { org: 'acme', deviceId: 'dev-1', ds: 'temperature' };

describe('history layout', () => {
  it('keeps ids of one series in time order across every number width', () => {
    const times = [
      0,
      1,
      3_599_999,
      3_600_000,
      36 * 3_600_000,
      1_296 * 3_600_000,
      1_700_000_000_000,
      16_725_225_600_000,
    ];
    const ids = times.map((at) => chunkId(series, periodOf(at, 0), 0));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids.map((id) => id.length)).size).toBe(1);
  });

  it('orders chunk sequences numerically within an hour', () => {
    const ids = [0, 1, 9, 10, 35, 36, 1_295, 1_296].map((seq) => chunkId(series, 10, seq));
    expect([...ids].sort()).toEqual(ids);
  });

  it('puts the same hour of one series in one place and different hours apart', () => {
    expect(periodOf(1_700_000_000_000, 0)).toBe(periodOf(1_700_000_000_000 + 1, 0));
    expect(chunkId(series, periodOf(7_200_000, 0), 0)).not.toBe(chunkId(series, periodOf(7_199_999, 0), 0));
  });

  it('rejects negative, fractional and unsafe times and sequences', () => {
    expect(() => periodOf(-1, 0)).toThrow(RangeError);
    expect(() => periodOf(1.5, 0)).toThrow(RangeError);
    expect(() => periodOf(Number.MAX_SAFE_INTEGER + 1, 0)).toThrow(RangeError);
    expect(() => chunkId(series, 1, -1)).toThrow(RangeError);
    expect(() => chunkId(series, 1, 36 ** 4)).toThrow(RangeError);
    expect(periodOf(0, 3)).toBe(0);
  });

  it('keeps series apart even when their ids contain separators', () => {
    const a = seriesPrefix({ org: 'o', deviceId: 'd', ds: 'a/b' });
    const b = seriesPrefix({ org: 'o', deviceId: 'd/a', ds: 'b' });
    expect(a).not.toBe(b);
    expect(a).toBe('o/d/a%2Fb/');
    expect(seriesPrefix({ org: 'o', deviceId: 'd', ds: 'device.model' })).toBe('o/d/device.model/');
    expect(seriesPrefix({ org: 'o', deviceId: 'd', ds: 'temp%' })).toBe('o/d/temp%25/');
  });

  it('gives each level its own marker id', () => {
    const ids = ([1, 2, 3] as const).map((level) => periodId(series, level, 5));
    expect(new Set(ids).size).toBe(3);
    expect(ids.every((id) => id.startsWith(seriesPrefix(series)))).toBe(true);
  });

  it('lists the periods of a range newest first, both ends included', () => {
    const h = LEVEL_MS[0];
    expect(periodsNewestFirst(0, 0, h)).toEqual([1, 0]);
    expect(periodsNewestFirst(0, h, 2 * h - 1)).toEqual([1]);
    expect(periodsNewestFirst(0, 5, 4)).toEqual([]);
    expect(periodsNewestFirst(1, 0, 3 * LEVEL_MS[1])).toEqual([3, 2, 1, 0]);
  });
});
