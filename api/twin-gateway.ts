// The API's way to the twins: start, query, update and signal twin workflows through the Temporal client.
import {
  type Client,
  WorkflowIdConflictPolicy,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { ProfilePatch, TelemetryBatch, TwinState } from '../twins/twin-core';
import type { DeviceProfile, TwinIdentity } from '../twins/types';
import { twinWorkflowId } from '../workflows/ids';
import {
  TWINFLOW_DEVICE_ID,
  TWINFLOW_ORG,
  TWINFLOW_STATUS,
  TWINFLOW_TWIN_TYPE,
} from '../workflows/search-attributes';
import {
  decommissionUpdate,
  getTwinStateQuery,
  reportTelemetrySignal,
  updateProfileUpdate,
} from '../workflows/twin.messages';
import type { TwinWorkflowOptions, twinWorkflow } from '../workflows/twin.workflow';
import { ApiError } from './errors';

export interface TwinGatewayOptions {
  readonly taskQueue: string;
  readonly twinOptions?: Partial<TwinWorkflowOptions>;
}

/** Maps a failure raised by the twin (validator or handler) to an API error. */
function toApiError(err: unknown): never {
  if (err instanceof WorkflowNotFoundError) throw new ApiError('NOT_FOUND', 'the device has no running twin');
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
    const { type, message } = err.cause;
    if (type === 'INVALID_ARGUMENT') throw new ApiError('INVALID_ARGUMENT', message);
    if (type === 'DECOMMISSIONED') throw new ApiError('CONFLICT', message);
  }
  throw err;
}

export class TwinGateway {
  constructor(
    private readonly client: Client,
    private readonly options: TwinGatewayOptions,
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
    let timer: NodeJS.Timeout | undefined;
    const query = this.client.workflow.getHandle(twinWorkflowId(org, deviceId)).query(getTwinStateQuery);
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    try {
      return await Promise.race([query, timeout]);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    } finally {
      clearTimeout(timer);
      query.catch(() => undefined); // a query that lost the race must not become an unhandled rejection
    }
  }

  async updateProfile(org: string, deviceId: string, patch: ProfilePatch): Promise<DeviceProfile> {
    try {
      return await this.client.workflow
        .getHandle(twinWorkflowId(org, deviceId))
        .executeUpdate(updateProfileUpdate, { args: [patch] });
    } catch (err) {
      return toApiError(err);
    }
  }

  async decommission(org: string, deviceId: string): Promise<TwinState | undefined> {
    try {
      return await this.client.workflow
        .getHandle(twinWorkflowId(org, deviceId))
        .executeUpdate(decommissionUpdate);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      return toApiError(err);
    }
  }

  async reportTelemetry(org: string, deviceId: string, batch: TelemetryBatch): Promise<void> {
    await this.client.workflow.getHandle(twinWorkflowId(org, deviceId)).signal(reportTelemetrySignal, batch);
  }
}
