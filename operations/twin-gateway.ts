// The API's way to the twins: start, query, update and signal twin workflows through the Temporal client.
import {
  type Client,
  WorkflowIdConflictPolicy,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  type DeviceResponse,
  type OperationRecord,
  type OperationRequest,
  type RequestEnvelope,
  isFinal,
} from '../twins/operations';
import type { AlarmRecord } from '../twins/behaviours';
import type { DesiredView } from '../twins/desired';
import type { ProfilePatch, TelemetryBatch, TwinState } from '../twins/twin-core';
import type { DeviceProfile, TwinIdentity } from '../twins/types';
import { operationWorkflowId, twinWorkflowId } from '../workflows/ids';
import { getOperationQuery, reportResponseSignal } from '../workflows/operation.messages';
import type { operationWorkflow } from '../workflows/operation.workflow';
import {
  TWINFLOW_DEVICE_ID,
  TWINFLOW_ORG,
  TWINFLOW_STATUS,
  TWINFLOW_TWIN_TYPE,
} from '../workflows/search-attributes';
import {
  type AlarmAction,
  type DesiredPatch,
  type OperationAdmission,
  alarmActionUpdate,
  setDesiredUpdate,
  cancelOperationUpdate,
  claimPendingOperationsUpdate,
  decommissionUpdate,
  forwardOperationResponseUpdate,
  getTwinStateQuery,
  reportTelemetrySignal,
  requestOperationUpdate,
  updateProfileUpdate,
} from '../workflows/twin.messages';
import type { TwinWorkflowOptions, twinWorkflow } from '../workflows/twin.workflow';
import { RefusedError } from '../twins/outcomes';

export interface TwinGatewayOptions {
  readonly taskQueue: string;
  readonly twinOptions?: Partial<TwinWorkflowOptions>;
}

/** Maps a failure raised by the twin (validator or handler) to a refusal. */
function toRefusal(err: unknown): never {
  if (err instanceof WorkflowNotFoundError)
    throw new RefusedError('NOT_FOUND', 'the device has no running twin');
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
    const { type, message } = err.cause;
    if (type === 'INVALID_ARGUMENT') throw new RefusedError('INVALID_ARGUMENT', message);
    if (type === 'DECOMMISSIONED') throw new RefusedError('CONFLICT', message);
    if (type === 'RESOURCE_EXHAUSTED') throw new RefusedError('RESOURCE_EXHAUSTED', message);
    if (type === 'NOT_FOUND') throw new RefusedError('NOT_FOUND', message);
    if (type === 'CONFLICT') throw new RefusedError('CONFLICT', message);
    if (type === 'PRECONDITION_FAILED') throw new RefusedError('PRECONDITION_FAILED', message);
  }
  throw err;
}

/** Resolves with undefined after ms, and never leaves a timer behind. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
    p.catch(() => undefined); // the loser must not become an unhandled rejection
  }
}

export class TwinGateway {
  /** `waitClient` serves the long polls of `waitForOperation` (they stop at their deadline by an abort signal). */
  constructor(
    private readonly client: Client,
    private readonly options: TwinGatewayOptions,
    private readonly waitClient: Client = client,
  ) {}

  /** Starts the device's twin; a twin that already runs is kept (idempotent provisioning). */
  async startTwin(identity: TwinIdentity, profile: DeviceProfile, initialStatus: string): Promise<void> {
    await this.client.workflow.start<typeof twinWorkflow>('twinWorkflow', {
      workflowId: twinWorkflowId(identity.org, identity.deviceId),
      taskQueue: this.options.taskQueue,
      args: [{ identity, profile, options: this.options.twinOptions }],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      typedSearchAttributes: [
        { key: TWINFLOW_ORG, value: identity.org },
        { key: TWINFLOW_DEVICE_ID, value: identity.deviceId },
        { key: TWINFLOW_TWIN_TYPE, value: identity.twinType },
        { key: TWINFLOW_STATUS, value: initialStatus },
      ],
      staticSummary: `Twin of device ${identity.deviceId} (${identity.twinType}) in ${identity.org}`,
    });
  }

  /**
   * The live state, or undefined when the twin cannot answer soon: not running (decommissioned), or no
   * worker is polling right now. Callers then fall back to the snapshot in the read model.
   */
  async getState(org: string, deviceId: string, timeoutMs = 2_000): Promise<TwinState | undefined> {
    const query = this.client.workflow.getHandle(twinWorkflowId(org, deviceId)).query(getTwinStateQuery);
    try {
      return await within(query, timeoutMs);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  /** Acknowledges or clears an alarm on the twin; answers the alarm once the twin has stored it. */
  async alarmAction(org: string, deviceId: string, action: AlarmAction): Promise<AlarmRecord> {
    try {
      return await this.client.workflow
        .getHandle(twinWorkflowId(org, deviceId))
        .executeUpdate(alarmActionUpdate, { args: [action] });
    } catch (err) {
      return toRefusal(err);
    }
  }

  /** Changes the desired state on the twin; answers the new view once any attempt it starts is admitted. */
  async setDesired(org: string, deviceId: string, patch: DesiredPatch): Promise<DesiredView | null> {
    try {
      return await this.client.workflow
        .getHandle(twinWorkflowId(org, deviceId))
        .executeUpdate(setDesiredUpdate, { args: [patch] });
    } catch (err) {
      return toRefusal(err);
    }
  }

  async updateProfile(org: string, deviceId: string, patch: ProfilePatch): Promise<DeviceProfile> {
    try {
      return await this.client.workflow
        .getHandle(twinWorkflowId(org, deviceId))
        .executeUpdate(updateProfileUpdate, { args: [patch] });
    } catch (err) {
      return toRefusal(err);
    }
  }

  /**
   * Decommissions the twin and waits (a few seconds at most) for it to publish its last snapshot and end,
   * so that the caller's own writes to the device's record come after the twin's.
   */
  async decommission(org: string, deviceId: string, settleMs = 10_000): Promise<TwinState | undefined> {
    const handle = this.client.workflow.getHandle(twinWorkflowId(org, deviceId));
    try {
      const state = await handle.executeUpdate(decommissionUpdate);
      await within(handle.result(), settleMs).catch(() => undefined);
      return state;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      // Decommissioned already (a concurrent request, or a retry): the same end, so not an error. The
      // update may also fail because the twin completed meanwhile; then it has ended all the same.
      const already =
        err instanceof WorkflowUpdateFailedError &&
        err.cause instanceof ApplicationFailure &&
        err.cause.type === 'DECOMMISSIONED';
      if (already || (await this.hasEnded(handle))) {
        await within(handle.result(), settleMs).catch(() => undefined);
        return undefined;
      }
      return toRefusal(err);
    }
  }

  private async hasEnded(handle: { describe(): Promise<{ status: { name: string } }> }): Promise<boolean> {
    try {
      return (await handle.describe()).status.name !== 'RUNNING';
    } catch (err) {
      return err instanceof WorkflowNotFoundError;
    }
  }

  /** Queues an operation through the device's twin, which checks it against its type's catalogue. */
  async requestOperation(request: OperationRequest): Promise<OperationAdmission> {
    try {
      return await this.client.workflow
        .getHandle(twinWorkflowId(request.org, request.deviceId))
        .executeUpdate(requestOperationUpdate, { args: [request] });
    } catch (err) {
      return toRefusal(err);
    }
  }

  /** A device polls: its waiting operations, handed over once each. */
  async claimPendingOperations(org: string, deviceId: string, limit: number): Promise<RequestEnvelope[]> {
    try {
      return await this.client.workflow
        .getHandle(twinWorkflowId(org, deviceId))
        .executeUpdate(claimPendingOperationsUpdate, { args: [{ limit }] });
    } catch (err) {
      return toRefusal(err);
    }
  }

  async cancelOperation(org: string, deviceId: string, id: string, by: string): Promise<void> {
    try {
      await this.client.workflow
        .getHandle(twinWorkflowId(org, deviceId))
        .executeUpdate(cancelOperationUpdate, { args: [{ id, by }] });
    } catch (err) {
      toRefusal(err);
    }
  }

  /** Hands a device response to its operation; false when the operation's workflow has ended. */
  async reportOperationResponse(
    org: string,
    deviceId: string,
    id: string,
    response: DeviceResponse,
    receivedAt: number,
  ): Promise<boolean> {
    try {
      await this.client.workflow
        .getHandle(operationWorkflowId(org, deviceId, id))
        .signal(reportResponseSignal, { response, receivedAt });
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  /**
   * Hands a device response to the twin, for an operation that has no workflow yet (the twin is pushing it or
   * starting its workflow); false when the operation is not open on the twin.
   */
  async forwardOperationResponse(
    org: string,
    deviceId: string,
    id: string,
    response: DeviceResponse,
    receivedAt: number,
  ): Promise<boolean> {
    try {
      await this.client.workflow
        .getHandle(twinWorkflowId(org, deviceId))
        .executeUpdate(forwardOperationResponseUpdate, { args: [{ id, response, receivedAt }] });
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
        if (err.cause.type === 'NOT_FOUND' || err.cause.type === 'DECOMMISSIONED') return false;
      }
      throw err;
    }
  }

  /**
   * The operation's final record once it ends within waitMs, else undefined. An operation whose workflow does
   * not exist (yet) is looked up with `stored`: the twin ended it itself when that record is final.
   */
  async waitForOperation(
    org: string,
    deviceId: string,
    id: string,
    waitMs: number,
    stored?: () => Promise<OperationRecord | null>,
  ): Promise<OperationRecord | undefined> {
    const handle = this.waitClient.workflow.getHandle<typeof operationWorkflow>(
      operationWorkflowId(org, deviceId, id),
    );
    // The long poll stops at the deadline: an operation may wait days for a sleepy device.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), waitMs);
    let pause = 10;
    try {
      for (;;) {
        try {
          return await this.waitClient.connection.withAbortSignal(abort.signal, () => handle.result());
        } catch (err) {
          if (abort.signal.aborted) return undefined;
          // No workflow: the twin ended it without one, or is still pushing it or starting its workflow.
          if (!(err instanceof WorkflowNotFoundError)) throw err;
          const record = await stored?.();
          if (record && isFinal(record.status)) return record;
          pause = Math.min(pause * 2, 500);
          await new Promise((r) => setTimeout(r, pause));
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** The live record of a running operation, or undefined when it cannot answer soon. */
  async queryOperation(
    org: string,
    deviceId: string,
    id: string,
    timeoutMs = 2_000,
  ): Promise<OperationRecord | undefined> {
    const query = this.client.workflow
      .getHandle(operationWorkflowId(org, deviceId, id))
      .query(getOperationQuery);
    try {
      return await within(query, timeoutMs);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  async reportTelemetry(org: string, deviceId: string, batch: TelemetryBatch): Promise<void> {
    await this.client.workflow.getHandle(twinWorkflowId(org, deviceId)).signal(reportTelemetrySignal, batch);
  }
}
