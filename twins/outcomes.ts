// Typed outcomes of TwinFlow's services, shared by every transport: refusal codes, never HTTP statuses.
// api/ maps them to statuses, mqtt/ to acknowledge-and-drop or leave unacknowledged.

/** Why a service refused a request; the sender must change something before trying again (but UNAVAILABLE). */
export type RefusalCode =
  | 'BAD_REQUEST'
  | 'INVALID_ARGUMENT'
  | 'PERMISSION_DENIED'
  | 'NOT_FOUND'
  | 'CONFLICT'
  /** The change was based on a version that is no longer current (If-Match). */
  | 'PRECONDITION_FAILED'
  | 'GONE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNPROCESSABLE'
  | 'RESOURCE_EXHAUSTED'
  /** Busy now, not wrong: retry shortly (HTTP 503; MQTT leaves the message unacknowledged). */
  | 'UNAVAILABLE';

export interface Refusal {
  readonly ok: false;
  readonly code: RefusalCode;
  readonly message: string;
}

export type Outcome<T> = { readonly ok: true; readonly value: T } | Refusal;

export const accepted = <T>(value: T): Outcome<T> => ({ ok: true, value });
export const refused = (code: RefusalCode, message: string): Refusal => ({ ok: false, code, message });

/** For service calls deep in a stack (the twin gateway): the same refusal, thrown; adapters map it once. */
export class RefusedError extends Error {
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
    this.name = 'RefusedError';
  }
}
