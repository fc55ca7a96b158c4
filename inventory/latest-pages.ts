// Where a device's latest values live: in one of a fixed number of pages per organization.
//
// Every message changes its device's latest values. Written into each device's own document, a batch of
// messages from N devices is N updates, and an update is the store's most expensive request (the embedded
// FerretDB reads, rewrites and commits each one on its own: 2 to 4 ms). Grouping devices into pages makes a
// batch from any number of devices at most LATEST_PAGES updates.

/** Pages per organization. A batch writes at most this many documents for its latest values. */
export const LATEST_PAGES = 64;

/** FNV-1a, 32 bits: a stable spread of device ids over the pages. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export const latestPageOf = (deviceId: string): number => fnv1a(deviceId) % LATEST_PAGES;

export const latestPageId = (org: string, page: number): string => `${org}/${page}`;

/**
 * A device id as a field name: device ids may hold `.`, which MongoDB reads as a path and FerretDB refuses
 * (`%` is not allowed in a device id, so the encoding cannot collide).
 */
export const deviceField = (deviceId: string): string => deviceId.replace(/\./g, '%2E');
