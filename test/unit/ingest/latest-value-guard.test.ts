// LatestValueGuard: older datapoints never replace newer latest values, without a conditional update per datastream.
import { LatestValueGuard } from '../../../ingest/latest-value-guard';
import { encodeDatastreamKey } from '../../../inventory/datastream-key';

const v = (id: string, at: number, feed = 'default') => ({ id, feed, at });

describe('LatestValueGuard', () => {
  it('loads the stored times once per device and passes only newer values', async () => {
    const loads: string[] = [];
    const guard = new LatestValueGuard({
      loadTimes: async (org, deviceId) => {
        loads.push(`${org}/${deviceId}`);
        return new Map([[encodeDatastreamKey('device.model', 'default'), 100]]);
      },
    });
    expect(await guard.newer('o', 'd1', [v('device.model', 50), v('temperature', 10)])).toEqual([
      v('temperature', 10),
    ]);
    expect(await guard.newer('o', 'd1', [v('device.model', 150), v('temperature', 5)])).toEqual([
      v('device.model', 150),
    ]);
    expect(await guard.newer('o', 'd1', [v('temperature', 10)])).toEqual([v('temperature', 10)]);
    expect(loads).toEqual(['o/d1']);
  });

  it('keeps feeds and devices apart', async () => {
    const guard = new LatestValueGuard({ loadTimes: async () => new Map() });
    await guard.newer('o', 'd1', [v('t', 100, 'a')]);
    expect(await guard.newer('o', 'd1', [v('t', 50, 'b')])).toEqual([v('t', 50, 'b')]);
    expect(await guard.newer('o', 'd2', [v('t', 50, 'a')])).toEqual([v('t', 50, 'a')]);
    expect(await guard.newer('o', 'd1', [v('t', 50, 'a')])).toEqual([]);
  });

  it('reads the stored times again after forget()', async () => {
    let loads = 0;
    const guard = new LatestValueGuard({
      loadTimes: async () => {
        loads++;
        return new Map([[encodeDatastreamKey('t', 'default'), 100]]);
      },
    });
    await guard.newer('o', 'd1', [v('t', 200)]);
    guard.forget('o', 'd1');
    expect(await guard.newer('o', 'd1', [v('t', 150)])).toEqual([v('t', 150)]);
    expect(loads).toBe(2);
  });
});
