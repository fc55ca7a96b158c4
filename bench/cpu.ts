// CPU time by process over a measured run, read from /proc (Linux): where an operation's cost goes on a machine
// whose cores are the limit. Elsewhere it answers nothing and the benchmark prints no breakdown.
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks a second (USER_HZ): 100 on Linux everywhere Node runs. */
const TICKS_PER_SECOND = 100;

export type CpuSample = ReadonlyMap<
  number,
  { readonly name: string; readonly ppid: number; readonly ticks: number }
>;

/** utime + stime of every process this user can read. */
export function sampleCpu(): CpuSample {
  const out = new Map<number, { name: string; ppid: number; ticks: number }>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // The name is in parentheses and may hold spaces; the fields after it are space-separated.
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      out.set(Number(pid), { name, ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // Gone between the listing and the read.
    }
  }
  return out;
}

/** Names for processes the benchmark started that would otherwise go by their command (a second stack). */
export const processNames = new Map<number, string>();

/**
 * What to call a process: this one is "bench", a Node process it started is "twinflow" (the stack), the stack's
 * own children (Temporal, the store) go by their names, and anything not started from here is "elsewhere"
 * (the kernel, other work on the machine), so that other work does not pass for TwinFlow's.
 */
function label(sample: CpuSample, pid: number): string {
  if (pid === process.pid) return 'bench';
  const named = processNames.get(pid);
  if (named) return named;
  const chain: number[] = [];
  for (let p = sample.get(pid)?.ppid; p !== undefined && p > 1 && chain.length < 16; p = sample.get(p)?.ppid)
    chain.push(p);
  if (!chain.includes(process.pid)) return 'elsewhere';
  const name = sample.get(pid)!.name;
  return chain[0] === process.pid && name === 'node' ? 'twinflow' : name;
}

/** CPU milliseconds per unit of work between two samples, by process (see label), largest first. */
export function cpuPerUnit(before: CpuSample, after: CpuSample, units: number): [string, number][] {
  const byName = new Map<string, number>();
  for (const [pid, a] of after) {
    const b = before.get(pid);
    const ticks = a.ticks - (b && b.name === a.name ? b.ticks : 0);
    if (ticks <= 0) continue;
    const name = label(after, pid);
    byName.set(name, (byName.get(name) ?? 0) + ticks);
  }
  return [...byName]
    .sort((x, y) => y[1] - x[1])
    .map(([name, t]) => [name, (t * 1000) / TICKS_PER_SECOND / Math.max(1, units)]);
}

/** "30.1 ms here: twinflow 20.0, temporal 8.0, ...; elsewhere 4.2" (elsewhere is not counted in the total). */
export const describeCpu = (rows: readonly [string, number][]): string => {
  if (rows.length === 0) return 'no /proc here';
  const ours = rows.filter(([n]) => n !== 'elsewhere');
  const elsewhere = rows.find(([n]) => n === 'elsewhere')?.[1] ?? 0;
  return `${ours.reduce((s, [, ms]) => s + ms, 0).toFixed(1)} ms here: ${ours.map(([n, ms]) => `${n} ${ms.toFixed(1)}`).join(', ')}; elsewhere on the machine ${elsewhere.toFixed(1)}`;
};

/** Per process: nanoseconds its threads ran, and waited runnable for a CPU (/proc/<pid>/task/<tid>/schedstat). */
export type SchedSample = ReadonlyMap<number, { readonly runNs: number; readonly waitNs: number }>;

/** Run and run-queue wait of every thread of each process in `of` (Linux with schedstats; else empty). */
export function sampleSched(of: CpuSample): SchedSample {
  const out = new Map<number, { runNs: number; waitNs: number }>();
  for (const pid of of.keys()) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    const sum = { runNs: 0, waitNs: 0 };
    for (const tid of tids) {
      try {
        const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
        sum.runNs += run ?? 0;
        sum.waitNs += wait ?? 0;
      } catch {
        // The thread ended between the listing and the read.
      }
    }
    out.set(pid, sum);
  }
  return out;
}

/**
 * Milliseconds each process (see label) ran and waited for a CPU between two samples, largest wait first.
 * Threads that ended between them are not counted.
 */
export function schedBetween(
  names: CpuSample,
  before: SchedSample,
  after: SchedSample,
): [string, { run: number; wait: number }][] {
  const byName = new Map<string, { run: number; wait: number }>();
  for (const [pid, a] of after) {
    const b = before.get(pid);
    if (!b || !names.has(pid)) continue;
    const name = label(names, pid);
    const row = byName.get(name) ?? { run: 0, wait: 0 };
    row.run += Math.max(0, a.runNs - b.runNs) / 1e6;
    row.wait += Math.max(0, a.waitNs - b.waitNs) / 1e6;
    byName.set(name, row);
  }
  return [...byName].filter(([, r]) => r.run + r.wait > 0).sort((x, y) => y[1].wait - x[1].wait);
}

/** "twinflow ran 105 ms, waited 158; temporal ran 88, waited 175; ..." */
export const describeSched = (rows: readonly [string, { run: number; wait: number }][]): string =>
  rows.length === 0
    ? 'no schedstat here'
    : rows.map(([n, r]) => `${n} ran ${r.run.toFixed(0)} ms, waited ${r.wait.toFixed(0)}`).join('; ');

/** Adds up, over several measured windows, how long each process ran and waited for a CPU in them. */
export class SchedWindows {
  private readonly rows = new Map<string, { run: number; wait: number }>();
  private wallMs = 0;

  async measure<T>(window: () => Promise<T>): Promise<T> {
    const names = sampleCpu();
    const before = sampleSched(names);
    const t0 = performance.now();
    try {
      return await window();
    } finally {
      this.wallMs += performance.now() - t0;
      for (const [name, r] of schedBetween(names, before, sampleSched(names))) {
        const row = this.rows.get(name) ?? { run: 0, wait: 0 };
        row.run += r.run;
        row.wait += r.wait;
        this.rows.set(name, row);
      }
    }
  }

  /** "in 650 ms: twinflow ran 520 ms, waited 790; ..." */
  describe(): string {
    const rows = [...this.rows].sort((x, y) => y[1].wait - x[1].wait);
    return `in ${this.wallMs.toFixed(0)} ms: ${describeSched(rows)}`;
  }
}
