// The ingest pipeline shared by HTTP and MQTT: resolve the device, store the message in the next group commit's
// one insert, hold its points and latest values for reads and write-back (write-back.ts), then tell the twin.
import type { DatapointDoc, LatestValueDoc } from '../inventory/documents';
import type { CommitLogRepository } from '../inventory/commit-log.repo';
import type { DatapointRepository } from '../inventory/datapoints.repo';
import type { RecentIngest } from '../inventory/recent-ingest';
import type { DeviceRepository } from '../inventory/devices.repo';
import { toStoredValue } from '../inventory/storable';
import { type Channel, type Datapoint, datastreamKey } from '../twins/types';
import type { Principal } from '../access/principal';
import { type Outcome, accepted, refused } from '../twins/outcomes';
import { type CollectBody, MAX_DATAPOINTS_PER_MESSAGE, toDatapoints } from './collect.schema';
import type { DeviceDirectory } from './device-directory';
import { GroupCommit, type GroupCommitOptions, QueueFullError } from './group-commit';
import type { LatestValueGuard } from './latest-value-guard';
import type { TwinNotifier } from './twin-notifier';
import { WriteBack, type WriteBackOptions } from './write-back';

export interface IngestorDeps {
  readonly devices: DeviceRepository;
  readonly datapoints: DatapointRepository;
  readonly commits: CommitLogRepository;
  /** What this process holds for write-back; the repositories' reads merge it. */
  readonly recent: RecentIngest;
  readonly directory: DeviceDirectory;
  readonly notifier: TwinNotifier;
  readonly latestGuard: LatestValueGuard;
  readonly now: () => number;
  /** Group commit limits (defaults: 10,000 queued messages, 2,000 datapoints a write, one write at a time). */
  readonly groupCommit?: Partial<GroupCommitOptions>;
  readonly writeBack?: Partial<WriteBackOptions>;
  /** Logs points for forwarders that subscribe to their datastreams, before they are written back (see WriteBack). */
  readonly logPoints?: (points: readonly DatapointDoc[]) => Promise<void>;
  readonly warn?: (what: string, err: unknown) => void;
}

/** One message's writes, waiting for the next group commit. */
interface PendingWrite {
  readonly org: string;
  readonly deviceId: string;
  readonly docs: readonly DatapointDoc[];
  readonly latest: readonly LatestValueDoc[];
  readonly lastSeenAt: number;
}

// One write at a time by default: a write is one insert of the whole batch, and messages arriving meanwhile
// form the next batch. Batches stay moderate so that a write's latency (every sender's ack) stays short.
const GROUP_COMMIT_DEFAULTS: GroupCommitOptions = { maxQueued: 10_000, maxBatchItems: 2_000, concurrency: 1 };

export interface IngestResult {
  readonly deviceId: string;
  readonly stored: number;
}

export class Ingestor {
  private readonly commit: GroupCommit<PendingWrite>;
  private readonly writeBack: WriteBack;
  /** Messages waiting for the group commit beyond which the ingest is under pressure. */
  private readonly pressureThreshold: number;

  constructor(private readonly deps: IngestorDeps) {
    const groupCommit = { ...GROUP_COMMIT_DEFAULTS, ...deps.groupCommit };
    this.commit = new GroupCommit((batch) => this.write(batch), groupCommit);
    this.pressureThreshold = groupCommit.maxBatchItems / 4;
    this.writeBack = new WriteBack(
      {
        commits: deps.commits,
        datapoints: deps.datapoints,
        devices: deps.devices,
        recent: deps.recent,
        newer: (org, deviceId, values) => deps.latestGuard.newer(org, deviceId, values),
        warn: deps.warn ?? (() => undefined),
        ...(deps.logPoints ? { logPoints: deps.logPoints } : {}),
      },
      deps.writeBack,
    );
  }

  /**
   * Whether the ingest is backed up: more messages wait for the group commit than a quarter of a batch holds
   * (only a saturated pipeline lets that many gather). The twin notifier then slows its signals, whose
   * Temporal work competes with the commits for the CPU.
   */
  underPressure(): boolean {
    return this.commit.waiting > this.pressureThreshold;
  }

  /** Reads back what a crashed process left in the commit log and starts the write-back; returns how many commits. */
  start(): Promise<number> {
    return this.writeBack.start();
  }

  /** Stops the write-back after writing back everything held. */
  close(): Promise<void> {
    return this.writeBack.close();
  }

  /**
   * Group commit figures (batches, messages, the largest batch, messages refused for a full queue, seconds
   * writing commits) and the write-back's (history and latest seconds, what is held).
   */
  counters() {
    const { encodeSeconds, insertSeconds } = this.deps.commits.timings;
    return {
      ...this.commit.counters(),
      commitSeconds: encodeSeconds + insertSeconds,
      commitEncodeSeconds: encodeSeconds,
      commitInsertSeconds: insertSeconds,
      ...this.writeBack.counters(),
    };
  }

  /**
   * Stores one collect message. Resolves only once the datapoints and the latest values are written; a
   * refusal names what the sender must fix (unknown device, wrong key, too much data) or that it is busy.
   */
  async ingest(
    principal: Principal,
    urlDeviceId: string,
    body: CollectBody,
    channel: Channel,
  ): Promise<Outcome<IngestResult>> {
    // HTTP senders are told to come back (503); MQTT senders wait, unacknowledged, for room.
    const deviceId = body.device ?? urlDeviceId;
    if (principal.kind === 'device' && (principal.deviceId !== urlDeviceId || deviceId !== urlDeviceId)) {
      return refused('PERMISSION_DENIED', 'a device key may only send data for its own device');
    }
    const device = await this.deps.directory.get(principal.org, deviceId);
    if (!device) return refused('NOT_FOUND', `device ${deviceId} is not provisioned`);
    if (!device.active) return refused('GONE', `device ${deviceId} is decommissioned`);

    const receivedAt = this.deps.now();
    const datapoints = toDatapoints(body, receivedAt);
    if (datapoints.length > MAX_DATAPOINTS_PER_MESSAGE) {
      return refused('PAYLOAD_TOO_LARGE', `at most ${MAX_DATAPOINTS_PER_MESSAGE} datapoints per message`);
    }
    const org = principal.org;
    const docs: DatapointDoc[] = datapoints.map((dp) => ({
      org,
      deviceId,
      ds: dp.datastreamId,
      feed: dp.feed,
      at: dp.at,
      ...(dp.from === undefined ? {} : { from: dp.from }),
      ...toStoredValue(dp.value),
      receivedAt,
    }));
    const newest = newestPerDatastream(datapoints).map((dp): LatestValueDoc => ({
      id: dp.datastreamId,
      feed: dp.feed,
      at: dp.at,
      receivedAt,
      ...toStoredValue(dp.value),
    }));
    const latest = await this.deps.latestGuard.newer(org, deviceId, newest);
    const pending: PendingWrite = { org, deviceId, docs, latest, lastSeenAt: receivedAt };
    try {
      if (channel === 'mqtt') await this.commit.submitWhenRoom(pending, docs.length);
      else await this.commit.submit(pending, docs.length);
    } catch (err) {
      if (err instanceof QueueFullError) {
        return refused('UNAVAILABLE', 'more data is arriving than can be stored right now; retry shortly');
      }
      throw err;
    }
    this.deps.notifier.report(org, deviceId, device.twinType, datapoints, channel, receivedAt);
    return accepted({ deviceId, stored: datapoints.length });
  }

  /**
   * Writes many messages at once: one commit document with all their datapoints. Once it is stored, the
   * points and the latest values are held for reads and write-back.
   */
  private async write(batch: readonly PendingWrite[]): Promise<void> {
    const points = batch.flatMap((p) => p.docs);
    let id: string;
    try {
      id = await this.deps.commits.append(points, this.deps.now());
    } catch (err) {
      // What the guard took as stored is not: it reads the device again next time.
      for (const p of batch) this.deps.latestGuard.forget(p.org, p.deviceId);
      throw err;
    }
    this.deps.recent.add(
      points,
      batch.map((p) => ({ org: p.org, deviceId: p.deviceId, values: p.latest, lastSeenAt: p.lastSeenAt })),
    );
    this.writeBack.committed(id);
  }
}

function newestPerDatastream(datapoints: readonly Datapoint[]): Datapoint[] {
  const newest = new Map<string, Datapoint>();
  for (const dp of datapoints) {
    const key = datastreamKey(dp.datastreamId, dp.feed);
    const seen = newest.get(key);
    if (!seen || seen.at <= dp.at) newest.set(key, dp);
  }
  return [...newest.values()];
}
