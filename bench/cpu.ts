// CPU time by process over a measured run, read from /proc (Linux): where an operation's cost goes on a machine
// whose cores are the limit. Elsewhere it answers nothing and the benchmark prints no breakdown.
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks a second (USER_HZ): 100 on Linux everywhere Node runs. */
const TICKS_PER_SECOND = 100;

export type CpuSample = ReadonlyMap<number, { readonly name: string; readonly ticks: number }>;

/** utime + stime of every process this user can read. */
export function sampleCpu(): CpuSample {
  const out = new Map<number, { name: string; ticks: number }>();
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
      out.set(Number(pid), { name, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // Gone between the listing and the read.
    }
  }
  return out;
}

/**
 * CPU milliseconds per unit of work between two samples, by process name (this process is "bench"), largest
 * first; processes that used less than 1 % of the total are left out.
 */
export function cpuPerUnit(before: CpuSample, after: CpuSample, units: number): [string, number][] {
  const byName = new Map<string, number>();
  for (const [pid, a] of after) {
    const b = before.get(pid);
    const ticks = a.ticks - (b && b.name === a.name ? b.ticks : 0);
    if (ticks <= 0) continue;
    const name = pid === process.pid ? 'bench' : a.name;
    byName.set(name, (byName.get(name) ?? 0) + ticks);
  }
  const total = [...byName.values()].reduce((s, t) => s + t, 0);
  return [...byName]
    .filter(([, t]) => t >= total / 100)
    .sort((x, y) => y[1] - x[1])
    .map(([name, t]) => [name, (t * 1000) / TICKS_PER_SECOND / Math.max(1, units)]);
}

export const describeCpu = (rows: readonly [string, number][]): string =>
  rows.length === 0
    ? 'no /proc here'
    : `${rows.reduce((s, [, ms]) => s + ms, 0).toFixed(1)} ms in all: ${rows.map(([n, ms]) => `${n} ${ms.toFixed(1)}`).join(', ')}`;
