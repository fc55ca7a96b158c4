// The shapes of TwinFlow's MongoDB documents. Every document carries its organization.
import type { OperationRecord, OperationStep } from '../twins/operations';
import type { TwinSnapshot } from '../twins/twin-core';
import type { AttributeValue } from '../twins/types';
import type { StoredValue } from './storable';

export interface OrganizationDoc {
  _id: string;
  name: string;
  createdAt: Date;
}

export interface DeviceTransport {
  /** apiKey: what the device's server expects in X-ApiKey when TwinFlow pushes to it (never shown). */
  http?: { operationUrl: string; apiKey?: string };
  mqtt?: boolean;
  sleepy?: boolean;
}

/** A stored latest value; keyed in `latest` by encodeDatastreamKey(id, feed). */
export interface LatestValueDoc extends StoredValue {
  id: string;
  feed: string;
  at: number;
  receivedAt: number;
}

/**
 * One document per device, three writers with disjoint fields: the API owns the inventory fields,
 * the twin (through an activity) owns `twin`, the ingest path owns `latest` and `lastSeenAt`.
 */
export interface DeviceDoc {
  _id: string; // `${org}/${id}`
  org: string;
  id: string;
  name?: string;
  type: string;
  tags: string[];
  attributes: Record<string, AttributeValue>;
  transport: DeviceTransport;
  lifecycle: 'ACTIVE' | 'DECOMMISSIONED';
  createdAt: Date;
  createdBy: string;
  updatedAt: Date;
  decommissionedAt?: Date;
  twin?: TwinSnapshot;
  latest: Record<string, LatestValueDoc>;
  lastSeenAt?: number;
}

export type KeyKind = 'admin' | 'device';

export interface ApiKeyDoc {
  _id: string; // SHA-256 of the whole key, hex
  keyId: string; // public prefix, shown in lists
  org: string;
  kind: KeyKind;
  deviceId?: string;
  name?: string;
  createdAt: Date;
  revokedAt?: Date;
}

export interface DatapointDoc extends StoredValue {
  org: string;
  deviceId: string;
  ds: string;
  feed: string;
  at: number;
  from?: number;
  receivedAt: number;
}

export interface OperationStepDoc extends Omit<OperationStep, 'response'> {
  response?: StoredValue;
}

/** The read model of one operation workflow, written only by it (and late-response counts after its end). */
export interface OperationDoc extends Omit<OperationRecord, 'parameters' | 'steps'> {
  _id: string; // `${org}/${operationId}`
  parameters: StoredValue;
  steps: OperationStepDoc[];
}
