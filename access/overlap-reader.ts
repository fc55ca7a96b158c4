// Reading a log of changes by time: each read goes back a little before the last one began, so that an entry
// stamped by a clock a little behind, or stored a moment after its stamp, is not missed; and each entry is handed
// on once. And the loop that runs such reads one after the other.

/** Reads go back this far before the last read began. */
export const OVERLAP_MS = 30_000;

export class OverlapReader<T> {
  private since: number;
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly read: (since: Date) => Promise<readonly T[]>,
    private readonly idOf: (entry: T) => string,
    private readonly atOf: (entry: T) => number,
    private readonly now: () => number,
  ) {
    this.since = now() - OVERLAP_MS;
  }

  /** The entries not handed on before, and when the read that found them began. */
  async next(): Promise<{ fresh: T[]; startedAt: number }> {
    const startedAt = this.now();
    const entries = await this.read(new Date(this.since));
    const fresh = entries.filter((e) => !this.seen.has(this.idOf(e)));
    for (const e of fresh) this.seen.set(this.idOf(e), this.atOf(e));
    this.since = startedAt - OVERLAP_MS;
    // Only the overlap needs remembering.
    for (const [id, at] of this.seen) if (at < this.since) this.seen.delete(id);
    return { fresh, startedAt };
  }
}

/** While ticks keep failing, a failure is told once this often (the first one at once). */
const WARN_EVERY_MS = 60_000;

/**
 * Runs `tick` every `intervalMs` after the last one ended, until `stop`. A failed tick goes to `warn`: the first of
 * a run of failures at once, then one a minute, so that a store out of reach does not fill the log.
 */
export function repeat(
  intervalMs: number,
  tick: () => Promise<unknown>,
  warn: (err: unknown) => void,
  now: () => number = Date.now,
): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let warnedAt: number | undefined;
  const run = () => {
    tick()
      .then(
        () => (warnedAt = undefined),
        (err: unknown) => {
          if (warnedAt !== undefined && now() - warnedAt < WARN_EVERY_MS) return;
          warnedAt = now();
          warn(err);
        },
      )
      .finally(() => {
        if (timer) timer = setTimeout(run, intervalMs).unref();
      });
  };
  timer = setTimeout(run, intervalMs).unref();
  return {
    stop: () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
