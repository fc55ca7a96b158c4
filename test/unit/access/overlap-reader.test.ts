// Reading revocation logs by time: each entry handed on once though reads overlap, entries stamped a little late
// still found; and the read loop's warnings, one a minute while the store stays out of reach.
import { OverlapReader, repeat } from '../../../access/overlap-reader';

describe('the overlap reader', () => {
  it('hands each entry on once, and finds one stamped before the last read began but stored after it', async () => {
    const clock = { now: 100_000 };
    const log: { id: string; at: number }[] = [];
    const reader = new OverlapReader(
      async (since) => log.filter((e) => e.at >= since.getTime()),
      (e) => e.id,
      (e) => e.at,
      () => clock.now,
    );
    log.push({ id: 'a', at: 99_000 });
    expect((await reader.next()).fresh.map((e) => e.id)).toEqual(['a']);
    clock.now += 1_000;
    // Stamped 10 s ago by a clock behind this one, stored only now.
    log.push({ id: 'late', at: clock.now - 10_000 });
    const second = await reader.next();
    expect(second.fresh.map((e) => e.id)).toEqual(['late']);
    expect(second.startedAt).toBe(101_000);
    clock.now += 1_000;
    expect((await reader.next()).fresh).toEqual([]);
  });
});

describe('the read loop', () => {
  it('warns of the first failure at once, then once a minute, and again at once after a success', async () => {
    const clock = { now: 0 };
    const outcomes = [...Array<boolean>(13).fill(false), true, false];
    const warned: number[] = [];
    let ticks = 0;
    await new Promise<void>((resolve) => {
      const loop = repeat(
        1,
        async () => {
          const ok = outcomes[ticks++];
          clock.now += 10_000;
          if (ticks === outcomes.length) {
            loop.stop();
            setTimeout(resolve, 5);
          }
          if (!ok) throw new Error(`tick ${ticks}`);
        },
        () => warned.push(ticks),
        () => clock.now,
      );
    });
    // Failures at 10 s steps: warned at the 1st, 7th and 13th (a minute apart), and at once after the success.
    expect(warned).toEqual([1, 7, 13, 15]);
  });
});
