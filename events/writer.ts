// Appends to the event log from many writers at once: while one write is under way the next appends gather, so
// a busy process writes one batch per organization instead of one per caller, and an idle one does not wait.
// Each caller's promise settles once its own events are stored (or failed), so nothing it acknowledges is lost.
// Keyed events are logged once: the writer remembers the keys it logged lately and skips them without asking
// the store; the store's own check catches the rest (another process, a restart).
import { type BatchOutcome, Batcher } from '../inventory/batcher';
import type { FleetEvent, NewEvent } from './event-types';

/** Where the writer stores events (the event repository). */
export interface EventSink {
  append(
    org: string,
    events: readonly NewEvent[],
    options?: { checkKeys?: boolean | ReadonlySet<string> },
  ): Promise<FleetEvent[]>;
}

interface Waiting {
  readonly org: string;
  readonly events: readonly NewEvent[];
  /** The caller knows these keys were never logged: the store is not asked. */
  readonly fresh: boolean;
}

/** Keys remembered per process; the oldest are forgotten first. */
const REMEMBERED_KEYS = 100_000;

export class EventWriter {
  /** Appends asked for while a write is under way: the next write takes them all. */
  private readonly batcher = new Batcher<Waiting, void>((batch) => this.writeAll(batch), Infinity);
  /** Keys this writer logged (or found logged), in insertion order. */
  private readonly logged = new Set<string>();

  constructor(private readonly sink: EventSink) {}

  /**
   * Stores events of one organization in order after every event appended before; a logged key is skipped.
   * `fresh`: the caller knows their keys were never logged (it has just inserted the record they stand for, and
   * events are logged after their record), so the store is not asked about them.
   */
  async append(org: string, events: readonly NewEvent[], options: { fresh?: boolean } = {}): Promise<void> {
    const unlogged = events.filter((e) => e.key === undefined || !this.logged.has(`${org}\u0000${e.key}`));
    if (unlogged.length === 0) return;
    try {
      await this.batcher.submit({ org, events: unlogged, fresh: options.fresh ?? false });
    } catch (err) {
      throw err instanceof Error ? err : new Error('could not log events', { cause: err });
    }
  }

  /** One write per organization, side by side; a failed one fails only its own callers. */
  private async writeAll(batch: readonly Waiting[]): Promise<BatchOutcome<void>[]> {
    const outcomes: BatchOutcome<void>[] = batch.map(() => ({ value: undefined }));
    const byOrg = new Map<string, number[]>();
    batch.forEach((w, i) => {
      const list = byOrg.get(w.org);
      if (list) list.push(i);
      else byOrg.set(w.org, [i]);
    });
    await Promise.all(
      [...byOrg].map(async ([org, indexes]) => {
        try {
          await this.write(
            org,
            indexes.map((i) => batch[i]!),
          );
        } catch (error) {
          for (const i of indexes) outcomes[i] = { error };
        }
      }),
    );
    return outcomes;
  }

  private async write(org: string, waiting: readonly Waiting[]): Promise<void> {
    const events = waiting.flatMap((w) => w.events);
    const check = new Set(
      waiting.flatMap((w) => (w.fresh ? [] : w.events.flatMap((e) => (e.key !== undefined ? [e.key] : [])))),
    );
    await this.sink.append(org, events, { checkKeys: check });
    for (const e of events) if (e.key !== undefined) this.remember(`${org}\u0000${e.key}`);
  }

  private remember(key: string): void {
    this.logged.add(key);
    if (this.logged.size > REMEMBERED_KEYS) {
      const oldest = this.logged.values().next().value;
      if (oldest !== undefined) this.logged.delete(oldest);
    }
  }
}
