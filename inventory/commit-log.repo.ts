// The ingest commit log: one inserted document per group commit, the only write an acknowledgement waits
// for. The write-back deletes a commit once its history chunks and latest values are stored; commits a
// process could not write back (it crashed) are read back by its next start, or adopted by another process
// once it has been silent for a lease (see ingest/write-back.ts).
//
// Ownership: every commit id starts with the instance name of the process that stored it (TWINFLOW_INSTANCE,
// by default host:port, unique among the processes running) and that process start's incarnation. A process
// takes every commit of earlier starts under its own name at once (they are dead: one process runs under a
// name at a time). Another name's commits it takes only after that name's heartbeat in `ingest_owners` is
// older than the lease, claimed with one conditional update so that exactly one process adopts them; a live
// process's commits are never read back by another, which would write its points into the history twice.
import { randomUUID } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { Binary, type Collection, type Filter, type OptionalUnlessRequiredId } from 'mongodb';
import type { CommitDoc, DatapointDoc } from './documents';
import type { Collections } from './inventory';
import { isDuplicateKey } from './write-errors';

/** Deletes sent in one command at most. */
const DELETE_SLICE = 100;

/** Documents moved at a time from where an earlier release kept the commit log. */
const LEGACY_PAGE = 100;

/** Moves every document of `from` into `to`, a page at a time, each inserted before it is deleted. */
async function moveAll<T extends { _id: string }>(from: Collection<T>, to: Collection<T>): Promise<void> {
  for (;;) {
    const page = (await from.find({}).limit(LEGACY_PAGE).toArray()) as T[];
    if (page.length === 0) return;
    for (const doc of page) {
      try {
        await to.insertOne(doc as OptionalUnlessRequiredId<T>);
      } catch (err) {
        // Moved already by a start that crashed before its delete: the copy here is kept.
        if (!isDuplicateKey(err)) throw err;
      }
    }
    await from.deleteMany({ _id: { $in: page.map((d) => d._id) } } as Filter<T>);
  }
}

/** Instance names: what a host name and port, or a pod name, look like. */
export const INSTANCE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * The points of a stored commit: deflated ones, and the plain JSON that commits held before. Deflating (level
 * 1) cuts the bytes the store writes per commit about tenfold; on the embedded FerretDB a 1,500-point commit
 * insert went from 30-100 ms to 4-17 ms, and every acknowledgement waits for that insert. It runs on the main
 * thread: about 1 ms for 2,000 points (JSON about as much), where the thread pool's answer waited for a busy
 * event loop, 230 to 250 ms of a 360 to 500 ms commit under load.
 */
export function commitPoints(doc: Pick<CommitDoc, 'z' | 'points'>): DatapointDoc[] {
  if (doc.z) return JSON.parse(inflateRawSync(doc.z.buffer).toString('utf8')) as DatapointDoc[];
  return JSON.parse(doc.points ?? '[]') as DatapointDoc[];
}

export interface Commit {
  readonly id: string;
  readonly points: DatapointDoc[];
}

/**
 * The instance and incarnation a commit id names. Ids from before instances were named (`<uuid>/<seq>`)
 * belong to an unnamed instance per uuid, adopted like any silent one.
 */
export function commitOwner(id: string): { instance: string; incarnation: string } {
  const parts = id.split('/');
  if (parts.length >= 3) return { instance: parts[0]!, incarnation: parts[1]! };
  return { instance: `unnamed-${parts[0]}`, incarnation: parts[0]! };
}

/**
 * Which instances' commits a process may take now (pure): its own name's earlier incarnations always; another
 * name's only when that name is not its own and its heartbeat is older than the lease (or it has none).
 */
export function adoptionPlan(
  commitIds: readonly string[],
  self: { instance: string; incarnation: string },
  heartbeats: ReadonlyMap<string, number>,
  now: number,
  leaseMs: number,
): { own: string[]; silent: string[] } {
  const own: string[] = [];
  const others = new Set<string>();
  for (const id of commitIds) {
    const owner = commitOwner(id);
    if (owner.instance === self.instance) {
      if (owner.incarnation !== self.incarnation) own.push(id);
    } else others.add(owner.instance);
  }
  const silent = [...others].filter((name) => (heartbeats.get(name) ?? -Infinity) < now - leaseMs);
  return { own, silent: silent.sort() };
}

export class CommitLogRepository {
  /** This process start: commits are numbered within it. */
  readonly incarnation = randomUUID().slice(0, 8);
  private seq = 0;
  /** Names whose commits this process holds besides its own (adopted), with their ids' prefixes. */
  private readonly adopted = new Set<string>();
  /** Time spent encoding commits (JSON and deflate) and waiting for their inserts, summed. */
  readonly timings = { encodeSeconds: 0, insertSeconds: 0 };
  /** Whether what an earlier release left in the inventory's database was moved to the log's own yet. */
  private legacyMoved = false;

  constructor(
    private readonly c: Collections,
    readonly instance: string,
  ) {
    if (!INSTANCE_NAME_PATTERN.test(instance))
      throw new Error(`instance name ${JSON.stringify(instance)} must match ${INSTANCE_NAME_PATTERN}`);
  }

  /** Stores the points of one group commit in one insert; resolves with the commit's id. */
  async append(points: readonly DatapointDoc[], at: number): Promise<string> {
    const _id = `${this.instance}/${this.incarnation}/${(this.seq++).toString(36).padStart(8, '0')}`;
    const t0 = performance.now();
    const z = deflateRawSync(Buffer.from(JSON.stringify(points)), { level: 1 });
    const t1 = performance.now();
    try {
      await this.c.commits.insertOne({ _id, at, z: new Binary(z) });
    } finally {
      this.timings.encodeSeconds += (t1 - t0) / 1000;
      this.timings.insertSeconds += (performance.now() - t1) / 1000;
    }
    return _id;
  }

  /** Beats for this instance and for every name it adopted; call more often than the lease. */
  async heartbeat(now: number): Promise<void> {
    await this.c.ingestOwners.updateOne(
      { _id: this.instance },
      { $set: { incarnation: this.incarnation, heartbeatAt: now }, $unset: { adoptedBy: '' } },
      { upsert: true },
    );
    for (const name of this.adopted)
      await this.c.ingestOwners.updateOne({ _id: name }, { $set: { heartbeatAt: now } });
  }

  /**
   * The commits this process may write back now that no other process will: its own name's earlier starts',
   * and those of names silent for longer than `leaseMs`, each claimed with one conditional update (a name
   * another process claimed first is left to it). Names it adopted whose commits are all gone are released.
   */
  async adopt(now: number, leaseMs: number): Promise<Commit[]> {
    if (!this.legacyMoved) {
      await this.moveLegacy();
      this.legacyMoved = true;
    }
    const ids = (await this.c.commits.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    const owners = await this.c.ingestOwners.find({}).toArray();
    const heartbeats = new Map(owners.map((o) => [o._id, o.heartbeatAt]));
    const plan = adoptionPlan(ids, this, heartbeats, now, leaseMs);
    const taken = new Set<string>();
    for (const name of plan.silent) {
      if (this.adopted.has(name)) continue; // its commits are held already, on their way back
      if (await this.claim(name, heartbeats.get(name), now)) taken.add(name);
    }
    const wanted = [...plan.own, ...ids.filter((id) => taken.has(commitOwner(id).instance))];
    for (const name of taken) this.adopted.add(name);
    await this.release(ids);
    if (wanted.length === 0) return [];
    const docs = await this.c.commits.find({ _id: { $in: wanted } }).toArray();
    docs.sort((a, b) => a.at - b.at || (a._id < b._id ? -1 : 1));
    return docs.map((d) => ({ id: d._id, points: commitPoints(d) }));
  }

  /**
   * Moves the commits and owners an earlier release kept in the inventory's database into the log's own
   * database, a page at a time: each is inserted here before it is deleted there, so a crash in between leaves
   * it in both and the next start moves it again (the copy already here is kept). Instances of the earlier
   * release must all be stopped first: one still running would go on writing there.
   */
  private async moveLegacy(): Promise<void> {
    await moveAll(this.c.legacyIngestOwners, this.c.ingestOwners);
    await moveAll(this.c.legacyCommits, this.c.commits);
  }

  /** One conditional update: true when this process now holds `name`'s commits. */
  private async claim(name: string, seen: number | undefined, now: number): Promise<boolean> {
    const change = { $set: { heartbeatAt: now, incarnation: this.incarnation, adoptedBy: this.instance } };
    if (seen === undefined) {
      // No owner document (commits from before names, or one deleted): create it claimed; a duplicate key
      // means another process did so first.
      try {
        await this.c.ingestOwners.insertOne({ _id: name, ...change.$set });
        return true;
      } catch (err) {
        if (isDuplicateKey(err)) return false;
        throw err;
      }
    }
    const res = await this.c.ingestOwners.updateOne({ _id: name, heartbeatAt: seen }, change);
    return res.modifiedCount === 1;
  }

  /** Releases the adopted names whose commits are all written back (a clean stop calls this last). */
  async releaseDone(): Promise<void> {
    if (this.adopted.size === 0) return;
    const ids = (await this.c.commits.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    await this.release(ids);
  }

  /** Adopted names with no commit left: their owner document goes, so the name is free again. */
  private async release(ids: readonly string[]): Promise<void> {
    const left = new Set(ids.map((id) => commitOwner(id).instance));
    for (const name of [...this.adopted]) {
      if (left.has(name)) continue;
      await this.c.ingestOwners.deleteOne({ _id: name, adoptedBy: this.instance });
      this.adopted.delete(name);
    }
  }

  /** Deletes written-back commits, by `_id` (the one lookup FerretDB serves from an index). */
  async remove(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += DELETE_SLICE) {
      const slice = ids.slice(i, i + DELETE_SLICE);
      await this.c.commits.bulkWrite(
        slice.map((_id) => ({ deleteOne: { filter: { _id } } })),
        { ordered: false },
      );
    }
  }
}
