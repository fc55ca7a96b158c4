// Runs the twin core's effects: starts operation workflows, signals them, upserts the status search attribute.
import {
  ParentClosePolicy,
  getExternalWorkflowHandle,
  log,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { OperationRequest } from '../twins/operations';
import type { TwinEffect } from '../twins/twin-core';
import type { TwinIdentity } from '../twins/types';
import { operationWorkflowId } from './ids';
import { cancelRequestedSignal, handedOverSignal, proceedSignal } from './operation.messages';
import { operationWorkflow } from './operation.workflow';
import {
  TWINFLOW_DEVICE_ID,
  TWINFLOW_OPERATION,
  TWINFLOW_ORG,
  TWINFLOW_STATUS,
  TWINFLOW_TWIN_TYPE,
} from './search-attributes';

/** What the effects need from the twin that runs them. */
export interface TwinEffectHooks {
  /** An operation workflow could not be started: the twin forgets the operation. */
  readonly operationStartFailed: (id: string) => void;
  /** The read model should hear of the change; urgent when what lists filter by changed. */
  readonly snapshotWanted: (urgent: boolean) => void;
}

type ExternalHandle = ReturnType<typeof getExternalWorkflowHandle>;

/** One per twin run (never at module level: workflow modules are shared between workflows). */
export class TwinEffects {
  /** Signals and child starts still under way; they finish before the twin continues as new or ends. */
  readonly inFlight = new Set<Promise<void>>();
  /** Child starts still under way, so a signal never overtakes the start of its workflow. */
  readonly starting = new Map<string, Promise<void>>();
  /** The hand-over signals of the last poll; the poll answers once each operation knows. */
  handedOver: Promise<void>[] = [];

  constructor(
    private readonly identity: TwinIdentity,
    private readonly hooks: TwinEffectHooks,
  ) {}

  run(effect: TwinEffect): void {
    switch (effect.kind) {
      case 'startOperation':
        this.startOperation(effect.request, effect.startNow);
        break;
      case 'proceedOperation':
        void this.signalOperation(effect.id, (h) => h.signal(proceedSignal));
        break;
      case 'handOverOperations': {
        const at = Date.now();
        this.handedOver = effect.operations.map((op) =>
          this.signalOperation(op.id, (h) => h.signal(handedOverSignal, { at })),
        );
        break;
      }
      case 'cancelOperation':
        void this.signalOperation(effect.id, (h) => h.signal(cancelRequestedSignal, { by: effect.by }));
        break;
      case 'publishSnapshot':
        this.hooks.snapshotWanted(effect.urgent);
        break;
      case 'statusChanged':
        upsertSearchAttributes([{ key: TWINFLOW_STATUS, value: effect.to }]);
        break;
    }
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
    return p;
  }

  private opWorkflowId(id: string): string {
    return operationWorkflowId(this.identity.org, this.identity.deviceId, id);
  }

  private signalOperation(id: string, send: (h: ExternalHandle) => Promise<void>): Promise<void> {
    return this.track(
      (async () => {
        await this.starting.get(id);
        try {
          await send(getExternalWorkflowHandle(this.opWorkflowId(id)));
        } catch (err) {
          // The operation ended meanwhile; its end signal tidies the table.
          log.warn('could not signal an operation', { operationId: id, error: String(err) });
        }
      })(),
    );
  }

  private startOperation(request: OperationRequest, startNow: boolean): void {
    const { org, deviceId, twinType } = this.identity;
    const started = (async () => {
      try {
        await startChild(operationWorkflow, {
          workflowId: this.opWorkflowId(request.id),
          args: [{ request, startNow, twinWorkflowId: workflowInfo().workflowId, recordWrittenRev: 1 }],
          // The twin continues as new while operations run; they must outlive each run.
          parentClosePolicy: ParentClosePolicy.ABANDON,
          typedSearchAttributes: [
            { key: TWINFLOW_ORG, value: org },
            { key: TWINFLOW_DEVICE_ID, value: deviceId },
            { key: TWINFLOW_TWIN_TYPE, value: twinType },
            { key: TWINFLOW_OPERATION, value: request.name },
            {
              key: TWINFLOW_STATUS,
              value: request.delivery === 'pending' ? 'WAITING_FOR_CONNECTION' : 'QUEUED',
            },
          ],
          staticSummary: `${request.name} on ${deviceId} (${request.delivery}) requested by ${request.requestedBy}`,
        });
      } catch (err) {
        log.error('could not start an operation', { operationId: request.id, error: String(err) });
        this.hooks.operationStartFailed(request.id);
      } finally {
        this.starting.delete(request.id);
      }
    })();
    this.starting.set(request.id, started);
    void this.track(started);
  }
}
