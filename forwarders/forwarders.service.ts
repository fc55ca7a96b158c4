// Forwarders as the API uses them: create (and start the forwarder's workflow), change, pause, resume, delete,
// send a test event now, and replay dead letters. Transport-neutral: refusals are RefusedErrors with codes.
import { randomBytes } from 'node:crypto';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type { FleetEvent } from '../events/event-types';
import type { EventRepository } from '../inventory/events.repo';
import type { ForwarderDoc, ForwarderRepository } from '../inventory/forwarders.repo';
import { RefusedError } from '../twins/outcomes';
import type { forwarderWorkflow, ForwarderTiming } from '../workflows/forwarder.workflow';
import { resumeForwarderSignal } from '../workflows/forwarder.messages';
import { forwarderWorkflowId } from '../workflows/ids';
import type { DeliveryResult } from './deliver';
import { type ForwardingTools, sendEvent } from './lanes';

export interface ForwardersServiceDeps extends ForwardingTools {
  readonly client: Client;
  readonly taskQueue: string;
  readonly repo: ForwarderRepository;
  readonly events: EventRepository;
  readonly timing: ForwarderTiming;
}

export type NewForwarder = Pick<ForwarderDoc, 'name' | 'destination' | 'subscription'> & {
  readonly connector?: string;
};

export interface ReplayResult {
  readonly seq: number;
  readonly delivered: boolean;
  readonly error?: string;
}

export const DEFAULT_FORWARDER_TIMING: ForwarderTiming = {
  heartbeatMs: 30_000,
  retryInitialMs: 1_000,
  retryMaxMs: 60_000,
};

const notFound = (id: string) => new RefusedError('NOT_FOUND', `forwarder ${id} not found`);

export class ForwardersService {
  constructor(private readonly deps: ForwardersServiceDeps) {}

  private checkConnector(source: string | undefined): void {
    if (source === undefined) return;
    const error = this.deps.shaper.check(source);
    if (error !== undefined) throw new RefusedError('INVALID_ARGUMENT', `connector: ${error}`);
  }

  /** Stores the forwarder and starts its workflow at the log's end: it forwards what happens from now on. */
  async create(org: string, actor: string, input: NewForwarder): Promise<ForwarderDoc> {
    this.checkConnector(input.connector);
    const now = this.deps.now();
    const doc = await this.deps.repo.insert({
      org,
      id: `fwd_${randomBytes(6).toString('hex')}`,
      name: input.name,
      destination: input.destination,
      subscription: input.subscription,
      ...(input.connector !== undefined ? { connector: input.connector } : {}),
      status: 'active',
      cursor: await this.deps.events.counter(org),
      delivered: 0,
      createdAt: now,
      createdBy: actor,
      updatedAt: now,
    });
    await this.ensureRunning(doc);
    return doc;
  }

  /** Starts the workflow if none runs (a resume heals a forwarder whose workflow ended), then wakes it. */
  private async ensureRunning(doc: ForwarderDoc): Promise<void> {
    await this.deps.client.workflow.signalWithStart<typeof forwarderWorkflow, []>('forwarderWorkflow', {
      workflowId: forwarderWorkflowId(doc.org, doc.id),
      taskQueue: this.deps.taskQueue,
      args: [{ org: doc.org, id: doc.id, cursor: doc.cursor, timing: this.deps.timing }],
      signal: resumeForwarderSignal,
      signalArgs: [],
      staticSummary: `Forwarder ${doc.id} (${doc.name}) of ${doc.org}`,
    });
  }

  async get(org: string, id: string): Promise<ForwarderDoc> {
    const doc = await this.deps.repo.get(org, id);
    if (!doc) throw notFound(id);
    return doc;
  }

  async configure(
    org: string,
    id: string,
    change: Partial<NewForwarder> & { readonly removeConnector?: boolean },
  ): Promise<ForwarderDoc> {
    this.checkConnector(change.connector);
    const doc = await this.deps.repo.configure(org, id, change, this.deps.now());
    if (!doc) throw notFound(id);
    return doc;
  }

  async pause(org: string, id: string, actor: string): Promise<ForwarderDoc> {
    if (!(await this.deps.repo.setStatus(org, id, 'paused', `paused by ${actor}`))) throw notFound(id);
    return this.get(org, id);
  }

  async resume(org: string, id: string): Promise<ForwarderDoc> {
    if (!(await this.deps.repo.setStatus(org, id, 'active'))) throw notFound(id);
    const doc = await this.get(org, id);
    await this.ensureRunning(doc);
    return doc;
  }

  /** Deletes the forwarder and its dead letters; its workflow ends at once. */
  async remove(org: string, id: string): Promise<void> {
    if (!(await this.deps.repo.remove(org, id))) throw notFound(id);
    try {
      await this.deps.client.workflow.getHandle(forwarderWorkflowId(org, id)).terminate('forwarder deleted');
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }

  /** Sends a sample `forwarder.test` event now (not logged): what the destination answered. */
  async test(org: string, id: string): Promise<DeliveryResult & { readonly event: FleetEvent }> {
    const doc = await this.get(org, id);
    const now = this.deps.now();
    const event: FleetEvent = {
      id: '0',
      seq: 0,
      org,
      type: 'forwarder.test',
      at: now,
      body: { forwarderId: id, name: doc.name, message: 'a test event from TwinFlow' },
    };
    const result = await sendEvent(doc, event, this.deps, `${id}-test-${randomBytes(6).toString('hex')}`);
    return { ...result, event };
  }

  /**
   * Sends dead letters again (the given seqs, else the oldest `limit`), one after another in log order; each
   * delivered one leaves the list, each failure stays with its new error and attempt count.
   */
  async replay(org: string, id: string, seqs: readonly number[] | undefined, limit: number) {
    const doc = await this.get(org, id);
    const letters = seqs
      ? (await Promise.all(seqs.map((s) => this.deps.repo.getDeadLetter(org, id, s)))).filter(
          (l) => l !== null,
        )
      : await this.deps.repo.listDeadLetters(org, id, limit);
    const results: ReplayResult[] = [];
    for (const letter of letters.sort((a, b) => a.seq - b.seq)) {
      const result = await sendEvent(doc, letter.event, this.deps);
      if (result.kind === 'delivered') {
        await this.deps.repo.removeDeadLetter(org, id, letter.seq);
        results.push({ seq: letter.seq, delivered: true });
      } else {
        await this.deps.repo.addDeadLetter(org, id, letter.event, result.error, this.deps.now());
        results.push({ seq: letter.seq, delivered: false, error: result.error });
      }
    }
    return results;
  }
}
