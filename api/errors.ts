// One error envelope for the whole API: `{ error: { code, message, requestId } }`.
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Outcome, RefusalCode } from '../twins/outcomes';

export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  INVALID_ARGUMENT: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  GONE: 410,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  HEADERS_TOO_LARGE: 431,
  UNSUPPORTED_MEDIA_TYPE: 415,
  /** The request was well formed but could not be processed (a connector function failed on it). */
  UNPROCESSABLE: 422,
  RESOURCE_EXHAUSTED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
} as const satisfies Record<string, ContentfulStatusCode>;

// Every service refusal has its status here; the compiler checks the list stays complete.
const _everyRefusalHasAStatus: Record<RefusalCode, ContentfulStatusCode> = ERROR_STATUS;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get status(): ContentfulStatusCode {
    return ERROR_STATUS[this.code];
  }
}

/** A service's answer, or the API error its refusal maps to. */
export function orThrow<T>(outcome: Outcome<T>): T {
  if (!outcome.ok) throw new ApiError(outcome.code, outcome.message);
  return outcome.value;
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId: string; details?: unknown };
}

export const errorBody = (
  code: ErrorCode,
  message: string,
  requestId: string,
  details?: unknown,
): ErrorBody => ({
  error: details === undefined ? { code, message, requestId } : { code, message, requestId, details },
});
