// Shared value types of the twin core: datapoints, latest values, device profiles.

/** Where a device's data came from. */
export type Channel = 'http' | 'mqtt';

/** One value of one datastream, as the ingest path hands it to twin logic. */
export interface Datapoint {
  /** Datastream id, for example `temperature` or `device.model` (dots are allowed). */
  readonly datastreamId: string;
  readonly feed: string;
  readonly value: unknown;
  /** When the value was measured (ms since epoch). */
  readonly at: number;
  readonly from?: number;
}

/** The latest value the twin knows for one datastream and feed. */
export interface LatestValue {
  readonly id: string;
  readonly feed: string;
  readonly value: unknown;
  readonly at: number;
}

export type AttributeValue = string | number | boolean;

/** What an operator can change about a device. */
export interface DeviceProfile {
  readonly name?: string;
  readonly tags: readonly string[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

export interface TwinIdentity {
  readonly org: string;
  readonly deviceId: string;
  readonly twinType: string;
}

/** Pure logic reports failures as values; shells turn them into workflow or HTTP errors. */
export type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: string; readonly message: string };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(code: string, message: string): Result<T> => ({ ok: false, code, message });

/** Key of a datastream/feed pair; stable across runs. */
export const datastreamKey = (id: string, feed: string): string => `${id}\u0000${feed}`;
