// Follows one organization's event log in order from a position (an event id). The log numbers its batches by
// inserting them, so a reader that has read up to an id has seen every event before it: it resumes after it
// without a gap or a duplicate.
import type { FleetEvent } from './event-types';

/** Events one read asks for (whole batches come back, so a read may bring more). */
const READ_LIMIT = 500;

/** The store reads a tail needs (the event repository has them). */
export interface TailSource {
  readAfter(org: string, afterSeq: number, limit: number): Promise<FleetEvent[]>;
  counter(org: string): Promise<number>;
  /**
   * The last id that can ever hold an event stored with `seq` (stored events come in immutable batches): a
   * tail that has read everything stands there, so its next read starts after the batch instead of in it.
   */
  lastIdWith?(seq: number): number;
}

export class EventTail {
  private constructor(
    private readonly source: TailSource,
    readonly org: string,
    private settled: number,
  ) {}

  /** A tail that reads what comes after `after`; with no `after`, after what is logged now. */
  static async start(source: TailSource, org: string, after?: number): Promise<EventTail> {
    return new EventTail(source, org, after ?? (await source.counter(org)));
  }

  /** The id of the last event read. */
  get position(): number {
    return this.settled;
  }

  /**
   * Reads what was logged since the last call, in order, stopping once `max` events are read (the next call goes
   * on from there); answers [] when nothing was.
   */
  async advance(max = Infinity): Promise<FleetEvent[]> {
    const out: FleetEvent[] = [];
    for (;;) {
      const want = Math.min(READ_LIMIT, max - out.length);
      const events = (await this.source.readAfter(this.org, this.settled, want)).slice(0, want);
      out.push(...events);
      const last = events.at(-1);
      if (last) this.settled = last.seq;
      if (events.length < want) {
        // Everything is read: nothing more can come inside the last batch.
        if (last && this.source.lastIdWith) this.settled = this.source.lastIdWith(last.seq);
        return out;
      }
      if (out.length >= max) return out;
    }
  }
}
