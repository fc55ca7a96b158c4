// Follows one organization's event log in order. Each insert claims its number, so numbers come in order; should a
// reader still meet a hole (a store that shows a later insert first, an event retention already deleted), the tail
// waits GAP_WAIT_MS for it before it goes on, rather than passing an event that is about to show up.
import type { FleetEvent } from './event-types';

/** How long a tail waits for a missing number before it takes it as never written. */
export const GAP_WAIT_MS = 5_000;
/** Events one read takes. */
const READ_LIMIT = 500;
/** How far behind the log's end a new tail looks for numbers still on their way. */
const START_WINDOW = 200;

/** The store reads a tail needs (the event repository has them). */
export interface TailSource {
  readAfter(
    org: string,
    afterSeq: number,
    limit: number,
  ): Promise<readonly { seq: number; loggedAt: number }[]>;
  counter(org: string): Promise<number>;
}

export interface TailOptions {
  readonly gapWaitMs?: number;
  readonly now?: () => number;
}

export class EventTail<Doc extends { seq: number; loggedAt: number }> {
  /** Every event up to here is read (or was never written). */
  private settled: number;
  /** The missing number the tail waits for, and since when (this process's clock). */
  private gap: { seq: number; since: number } | undefined;
  private readonly gapWaitMs: number;
  private readonly now: () => number;

  private constructor(
    private readonly source: { readAfter(org: string, afterSeq: number, limit: number): Promise<Doc[]> },
    readonly org: string,
    start: number,
    options: TailOptions,
  ) {
    this.settled = start;
    this.gapWaitMs = options.gapWaitMs ?? GAP_WAIT_MS;
    this.now = options.now ?? Date.now;
  }

  /**
   * A tail that reads what comes after `after`. With no `after` it starts at the log's end, but behind a hole
   * among the last events, so an event still on its way is not passed over.
   */
  static async start<D extends { seq: number; loggedAt: number }>(
    source: {
      readAfter(org: string, afterSeq: number, limit: number): Promise<D[]>;
      counter(org: string): Promise<number>;
    },
    org: string,
    after?: number,
    options: TailOptions = {},
  ): Promise<EventTail<D>> {
    if (after !== undefined) return new EventTail(source, org, after, options);
    const end = await source.counter(org);
    const from = Math.max(0, end - START_WINDOW);
    const present = new Set((await source.readAfter(org, from, START_WINDOW)).map((d) => d.seq));
    let start = end;
    for (let seq = from + 1; seq <= end; seq++) {
      if (!present.has(seq)) {
        start = seq - 1;
        break;
      }
    }
    return new EventTail(source, org, start, options);
  }

  /** The last event read (or skipped as never written). */
  get position(): number {
    return this.settled;
  }

  /**
   * Reads what settled since the last call, in order, stopping once `max` events are read (the next call goes on
   * from there); answers [] when nothing settled.
   */
  async advance(max = Infinity): Promise<Doc[]> {
    const out: Doc[] = [];
    for (;;) {
      const docs = await this.source.readAfter(
        this.org,
        this.settled,
        Math.min(READ_LIMIT, max - out.length),
      );
      const taken = this.take(docs);
      out.push(...taken);
      if (out.length >= max || taken.length < READ_LIMIT || taken.length < docs.length) return out;
    }
  }

  private take(docs: readonly Doc[]): Doc[] {
    const taken: Doc[] = [];
    for (const doc of docs) {
      if (doc.seq <= this.settled) continue;
      if (doc.seq !== this.settled + 1 && !this.gapExpired(this.settled + 1)) break;
      this.gap = undefined;
      taken.push(doc);
      this.settled = doc.seq;
    }
    return taken;
  }

  /** True once the missing number has been waited for long enough. */
  private gapExpired(seq: number): boolean {
    const now = this.now();
    if (this.gap?.seq !== seq) this.gap = { seq, since: now };
    return now - this.gap.since >= this.gapWaitMs;
  }
}

export type { FleetEvent };
