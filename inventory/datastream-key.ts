// Encodes a datastream id and feed as one MongoDB field name (FerretDB forbids `.` and a leading `$`).
const encodePart = (s: string): string => encodeURIComponent(s).replace(/\./g, '%2E');

export const encodeDatastreamKey = (id: string, feed: string): string =>
  `${encodePart(id)}|${encodePart(feed)}`;

export function decodeDatastreamKey(key: string): { id: string; feed: string } | undefined {
  const bar = key.indexOf('|');
  if (bar < 0) return undefined;
  try {
    return { id: decodeURIComponent(key.slice(0, bar)), feed: decodeURIComponent(key.slice(bar + 1)) };
  } catch {
    return undefined;
  }
}
