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
