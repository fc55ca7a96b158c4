// Datapoint history: one document per value, indexed for per-series time-range reads.
import type { DatapointDoc } from './documents';
import type { Collections } from './inventory';

export class DatapointRepository {
  constructor(private readonly c: Collections) {}

  async insertMany(docs: readonly DatapointDoc[]): Promise<void> {
    if (docs.length > 0) await this.c.datapoints.insertMany([...docs], { ordered: false });
  }

  /** Newest first within [from, to]. */
  range(
    org: string,
    deviceId: string,
    ds: string,
    from: number,
    to: number,
    limit: number,
  ): Promise<DatapointDoc[]> {
    return this.c.datapoints
      .find({ org, deviceId, ds, at: { $gte: from, $lte: to } }, { projection: { _id: 0 } })
      .sort({ at: -1 })
      .limit(limit)
      .toArray();
  }
}
