// Live event streams of one process: one tail per organization that has readers, read every `pollMs`, its
// events handed to each reader whose filter they pass. A reader resuming from an id first reads the stored
// events up to where the tail stands, then takes the tail's, so it gets each event once and in order.
import type { EventRepository } from '../inventory/events.repo';
import { type EventFilter, type FleetEvent, matchesFilter } from './event-types';
import { EventTail } from './tail';

export interface HubOptions {
  /** How often an organization's tail is read while it has readers (ms). */
  readonly pollMs?: number;
  /** Called when a read fails (the tail tries again at its next turn). */
  readonly onError?: (err: unknown) => void;
}

/** One reader: `send` gets its events in order; a reader that throws is closed. */
interface Reader {
  after: number;
  filter: EventFilter;
  send: (event: FleetEvent) => void;
  /** Called when the hub closes (the process stops): the reader ends its stream. */
  end: () => void;
  /** Events the tail read while the reader caught up from the store. */
  held: FleetEvent[] | undefined;
}

/** What a reader gets back: its position, a new filter (a refreshed tag's devices), and a way out. */
export interface Subscription {
  readonly position: () => number;
  setFilter(filter: EventFilter): void;
  close(): void;
}

class OrgFeed {
  readonly readers = new Set<Reader>();
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;

  constructor(
    readonly tail: EventTail,
    private readonly pollMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Reads what settled and hands it out; one read at a time. */
  advance(): Promise<void> {
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    return this.reading;
  }

  private async read(): Promise<void> {
    const events = await this.tail.advance();
    if (events.length === 0) return;
    for (const reader of this.readers) for (const e of events) deliver(reader, e);
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.advance()
        .catch(this.onError)
        .finally(() => {
          if (this.readers.size > 0) this.timer = setTimeout(tick, this.pollMs);
          else this.timer = undefined;
        });
    };
    this.timer = setTimeout(tick, this.pollMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Hands an event to a reader once, in order: held while the reader still reads the store. */
function deliver(reader: Reader, e: FleetEvent): void {
  if (reader.held) {
    reader.held.push(e);
    return;
  }
  if (e.seq <= reader.after) return;
  reader.after = e.seq;
  if (matchesFilter(e, reader.filter)) reader.send(e);
}

/** Pages a catch-up reads from the store at a time. */
const CATCH_UP_PAGE = 500;

export class EventHub {
  private readonly feeds = new Map<string, Promise<OrgFeed>>();
  private closed = false;
  private readonly pollMs: number;
  private readonly onError: (err: unknown) => void;

  constructor(
    private readonly repo: EventRepository,
    options: HubOptions = {},
  ) {
    this.pollMs = options.pollMs ?? 100;
    this.onError = options.onError ?? (() => undefined);
  }

  private feed(org: string): Promise<OrgFeed> {
    let feed = this.feeds.get(org);
    if (!feed) {
      feed = EventTail.start(this.repo, org).then((tail) => new OrgFeed(tail, this.pollMs, this.onError));
      feed.catch(() => this.feeds.delete(org));
      this.feeds.set(org, feed);
    }
    return feed;
  }

  /** Where the organization's log is settled now: every event up to it can be read from the store. */
  async settled(org: string): Promise<number> {
    const feed = await this.feed(org);
    await feed.advance();
    return feed.tail.position;
  }

  /**
   * Streams the organization's events after `after` (none: from now on) that pass the filter, to `send`, until
   * closed. Answers once the stored events before the tail's position are sent.
   */
  async subscribe(
    org: string,
    after: number | undefined,
    filter: EventFilter,
    send: (event: FleetEvent) => void,
    end: () => void = () => undefined,
  ): Promise<Subscription> {
    if (this.closed) throw new Error('the event hub is closed');
    const feed = await this.feed(org);
    const upto = feed.tail.position;
    const reader: Reader = {
      after: after ?? upto,
      filter,
      send,
      end,
      held: after !== undefined ? [] : undefined,
    };
    feed.readers.add(reader);
    feed.start();
    const close = () => {
      feed.readers.delete(reader);
      if (feed.readers.size === 0) feed.stop();
    };
    try {
      if (reader.held) await this.catchUp(org, reader, upto);
    } catch (err) {
      close();
      throw err;
    }
    return { position: () => reader.after, setFilter: (f) => (reader.filter = f), close };
  }

  /** Sends the stored events in (reader.after, upto], then what the tail read meanwhile. */
  private async catchUp(org: string, reader: Reader, upto: number): Promise<void> {
    while (reader.after < upto) {
      const range = { afterSeq: reader.after, uptoSeq: upto };
      const page = await this.repo.list(org, reader.filter, range, CATCH_UP_PAGE);
      for (const e of page.items) reader.send(e);
      if (page.scannedTo <= reader.after) break;
      reader.after = page.scannedTo;
    }
    reader.after = Math.max(reader.after, upto);
    const held = reader.held ?? [];
    reader.held = undefined;
    for (const e of held) deliver(reader, e);
  }

  /** Stops every tail (the process is stopping). */
  close(): void {
    for (const feed of this.feeds.values())
      void feed.then(
        (f) => f.stop(),
        () => undefined,
      );
    this.feeds.clear();
  }
}
