// A Server-Sent Events reader for tests: opens a stream with fetch and parses its frames as they come.

export interface SseFrame {
  readonly id?: string;
  readonly event?: string;
  readonly data?: string;
  /** A comment line (`: heartbeat`). */
  readonly comment?: string;
}

export interface SseStream {
  readonly status: number;
  readonly frames: SseFrame[];
  /** Waits until `count` frames that pass `pick` have come; answers them. */
  waitFor(count: number, pick?: (f: SseFrame) => boolean, timeoutMs?: number): Promise<SseFrame[]>;
  close(): void;
}

function parseFrame(block: string): SseFrame | undefined {
  const frame: { id?: string; event?: string; data?: string; comment?: string } = {};
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) frame.comment = line.slice(1).trim();
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') frame.id = value;
    else if (field === 'event') frame.event = value;
    else if (field === 'data') frame.data = frame.data === undefined ? value : `${frame.data}\n${value}`;
  }
  return Object.keys(frame).length > 0 ? frame : undefined;
}

export async function openSse(url: string, headers: Record<string, string>): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  });
  const frames: SseFrame[] = [];
  const waiters = new Set<() => void>();
  if (res.ok && res.body) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    void (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          buffer += decoder.decode(value, { stream: true });
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const frame = parseFrame(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (frame) frames.push(frame);
          }
          for (const w of waiters) w();
        }
      } catch {
        // aborted
      }
    })();
  }
  return {
    status: res.status,
    frames,
    async waitFor(count, pick = (f) => f.id !== undefined, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = frames.filter(pick);
        if (got.length >= count) return got.slice(0, count);
        if (Date.now() > deadline)
          throw new Error(
            `only ${got.length} of ${count} frames within ${timeoutMs} ms: ${JSON.stringify(frames)}`,
          );
        await new Promise<void>((resolve) => {
          const done = () => {
            waiters.delete(done);
            clearTimeout(t);
            resolve();
          };
          const t = setTimeout(done, 200);
          waiters.add(done);
        });
      }
    },
    close: () => abort.abort(),
  };
}
