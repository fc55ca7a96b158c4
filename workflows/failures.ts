// The one place where the pure core's refusals become Temporal failures.
import { ApplicationFailure } from '@temporalio/workflow';
import type { Result } from '../twins/types';

/** The value of a successful Result; a failed one is thrown as a non-retryable ApplicationFailure with its code. */
export function ensureOk<T>(result: Result<T>): T {
  if (!result.ok) throw ApplicationFailure.nonRetryable(result.message, result.code);
  return result.value;
}
