// The shapes of TwinFlow's MongoDB documents. Every document carries its organization.
import type { Binary } from 'mongodb';
import type { ExecutionStatus, JobOrder, JobProgress, JobTarget, Rollout } from '../twins/job-plan';

export type { JobFilter, JobOrder, JobTarget } from '../twins/job-plan';
import type { AlarmRecord } from '../twins/behaviours';
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

/** A stored latest value; keyed by encodeDatastreamKey(id, feed). */
export interface LatestValueDoc extends StoredValue {
  id: string;
  feed: string;
  at: number;
  receivedAt: number;
}

/**
 * One document per device, two writers with disjoint fields: the API owns the inventory fields, the twin
 * (through an activity) owns `twin`. The ingest path writes latest values and `lastSeenAt` into the
 * organization's latest pages (LatestPageDoc); reads for the API fill them in here.
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
  /** From the device's latest page, filled in by the reads that serve the API; not stored here. */
  latest?: Record<string, LatestValueDoc>;
  lastSeenAt?: number;
}

/** One device's entry in a latest page. */
export interface LatestEntryDoc {
  values: Record<string, LatestValueDoc>;
  lastSeenAt: number;
}

/**
 * The latest values of the devices of one organization whose ids hash to one page (latest-pages.ts),
 * written only by the ingest path, one update per page and batch.
 */
export interface LatestPageDoc {
  _id: string; // `${org}/${page}`
  org: string;
  page: number;
  /** By deviceField(deviceId). */
  devices: Record<string, LatestEntryDoc>;
}

/** admin: the platform admin's bootstrap key; service: a key with a role; device: one device's key. */
export type KeyKind = 'admin' | 'service' | 'device';

export interface ApiKeyDoc {
  _id: string; // SHA-256 of the whole key, hex
  keyId: string; // public prefix, shown in lists
  org: string;
  kind: KeyKind;
  deviceId?: string;
  /** The role of a service key (built-in or custom). */
  role?: string;
  name?: string;
  createdBy?: string;
  createdAt: Date;
  revokedAt?: Date;
  /** The key that replaced this one when it was rotated. */
  replacedBy?: string;
}

export interface UserDoc {
  _id: string; // the e-mail address, lower case: logins look it up by _id
  org: string;
  name?: string;
  role: string;
  passwordHash: string; // Argon2id, PHC string
  disabled: boolean;
  /** Refresh sessions started before this instant no longer work (password change, disable). */
  sessionsValidAfter: number;
  createdAt: Date;
  createdBy: string;
  updatedAt: Date;
}

export interface RoleDoc {
  _id: string; // `${org}/${name}`
  org: string;
  name: string;
  description?: string;
  permissions: string[];
  createdAt: Date;
  updatedAt: Date;
}

/** One refresh token; `_id` is its SHA-256. A token is used once; its family is the login it came from. */
export interface RefreshTokenDoc {
  _id: string;
  family: string;
  userId: string;
  org: string;
  issuedAt: number;
  expiresAt: number;
}

/** Marks a refresh token as spent. Inserting it is the claim: a unique _id lets only one use win. */
export interface SpentRefreshTokenDoc {
  _id: string;
  at: number;
}

/** One login's chain of refresh tokens; revoking the family ends the session. */
export interface SessionFamilyDoc {
  _id: string;
  userId: string;
  org: string;
  createdAt: number;
  revokedAt?: number;
  revokedReason?: string;
}

export interface AuditDoc {
  _id: string; // `${org}/${time-ordered id}`, so an org's entries sort by _id
  org: string;
  at: Date;
  actor: string;
  action: string;
  resource: string;
  outcome: 'ok' | 'refused';
  details?: Record<string, unknown>;
  requestId?: string;
}

export interface SettingDoc {
  _id: string;
  value: string;
  createdAt: Date;
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

/** One point inside a history chunk. */
export interface ChunkPointDoc extends StoredValue {
  feed: string;
  at: number;
  from?: number;
  receivedAt: number;
}

/**
 * A history document (`inventory/history-layout.ts`): level 0 is a chunk of one series' points in one hour
 * from one write; levels 1-3 are markers saying a longer period of the series has data. `end` (exclusive)
 * is when the whole period falls out of retention.
 */
export interface DatapointChunkDoc {
  _id: string;
  org: string;
  deviceId: string;
  ds: string;
  level: 0 | 1 | 2 | 3;
  start: number;
  end: number;
  points?: ChunkPointDoc[];
}

/**
 * One group commit of the ingest path (commit-log.repo.ts): every datapoint of the batch, as JSON text (one
 * string is far cheaper for the embedded FerretDB to store than thousands of nested documents). Deleted
 * once the write-back has stored its history chunks and latest values.
 */
export interface CommitDoc {
  _id: string; // `${process instance}/${sequence}`
  at: number;
  /** JSON of DatapointDoc[], deflated (raw DEFLATE): a tenth of the bytes for the store to write. */
  z?: Binary;
  /** JSON of DatapointDoc[], as commits were stored before they were deflated. */
  points?: string;
}

/** Who holds an ingest instance's commits: the instance itself while it beats, or whoever adopted them. */
export interface IngestOwnerDoc {
  _id: string; // the instance name (TWINFLOW_INSTANCE)
  /** The process start now writing (or adopting) under this name. */
  incarnation: string;
  /** Last heartbeat (ms since epoch); a name silent for longer than the lease may be adopted. */
  heartbeatAt: number;
  /** Set when another instance adopted this one's commits after its lease ran out. */
  adoptedBy?: string;
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

/**
 * How many operations wait for a sleepy device's next poll, kept current by the device's twin (its only writer), so
 * that an empty poll is answered without asking the twin. No document: the twin has not written one yet (ask it).
 */
/** A job: what it runs, on what, how; its progress as the job workflow last wrote it. */
export interface JobDoc {
  _id: string; // `${org}/${id}`
  org: string;
  id: string;
  order: JobOrder;
  target: JobTarget;
  rollout: Rollout;
  requestedBy: string;
  createdAt: number;
  /** The schedule that started it, if any. */
  scheduleId?: string;
  status: JobProgress['status'];
  progress?: JobProgress;
  updatedAt: number;
}

/** One device of a job, in the order the job takes them. */
export interface JobExecutionDoc {
  _id: string; // `${org}/${jobId}/${seq, 9 digits}`
  org: string;
  jobId: string;
  seq: number;
  deviceId: string;
  status: ExecutionStatus;
  operationId?: string;
  operationStatus?: string;
  reason?: string;
  startedAt?: number;
  finishedAt?: number;
}

export interface PendingMarkerDoc {
  _id: string; // `${org}/${deviceId}`
  waiting: number;
  at: number;
}

/** How far one process's record of its pending-marker writes is complete: `_id` is the writer's id. */
export interface PendingWriterDoc {
  _id: string;
  seq: number;
  /** When it last published (ms). */
  at: number;
}

/** One pending-marker write, in its writer's ring of slots: `_id` is `${writer}:${seq % ring size}`. */
export interface PendingChangeDoc {
  _id: string;
  writer: string;
  seq: number;
  /** `${org}/${deviceId}`, as the marker's `_id`. */
  key: string;
}

/** A connector function: JavaScript that translates a device's own payload into datastreams. */
export interface FunctionDoc {
  _id: string; // `${org}/${name}`
  org: string;
  name: string;
  description?: string;
  source: string;
  criteria: {
    mqttTopic?: string;
    httpPath?: string;
    deviceType?: string;
    deviceIds?: string[];
  };
  mode: 'DISABLED' | 'TEST' | 'PRODUCTION';
  version: number;
  createdAt: Date;
  createdBy: string;
  updatedAt: Date;
  updatedBy: string;
}

/**
 * A certificate authority an organization trusts for its devices: registered (its certificate only) or managed
 * (TwinFlow holds its key and signs devices' CSRs). `_id` is `${org}/${fingerprint}`.
 */
export interface CertificateAuthorityDoc {
  _id: string;
  org: string;
  /** SHA-256 of the DER certificate, lower-case hex. */
  fingerprint: string;
  name: string;
  /** The subject as Node prints it (`CN=...`), matched against a device certificate's issuer. */
  subject: string;
  pem: string;
  /** Where a device certificate names its device: the subject CN, or a URI SAN with `uriPrefix`. */
  deviceIdFrom: 'cn' | 'san-uri';
  uriPrefix?: string;
  managed: boolean;
  /** The managed CA's private key (PKCS#8 PEM); never shown by the API. */
  keyPem?: string;
  notBefore: Date;
  notAfter: Date;
  createdAt: Date;
  createdBy?: string;
}

/**
 * One device certificate TwinFlow knows by fingerprint (`_id`, SHA-256 hex): pinned to a device, issued from a
 * CSR, or only revoked (a certificate from a registered CA that TwinFlow never saw whole).
 */
export interface DeviceCertificateDoc {
  _id: string;
  org: string;
  deviceId: string;
  source: 'pinned' | 'issued' | 'revoked';
  subject?: string;
  issuer?: string;
  serial?: string;
  notBefore?: Date;
  notAfter?: Date;
  createdAt: Date;
  createdBy?: string;
  revokedAt?: Date;
  replacedBy?: string;
}

/** How a device may authenticate: `certificatesOnly` refuses its API keys. `_id` is `${org}/${deviceId}`. */
export interface DeviceCredentialPolicyDoc {
  _id: string;
  org: string;
  deviceId: string;
  certificatesOnly: boolean;
  updatedAt: Date;
}

/** One alarm of one device, written by the device's twin (its only writer) and by no one else. */
export interface AlarmDoc extends AlarmRecord {
  _id: string; // `${org}/${deviceId}/${name}`
  org: string;
  deviceId: string;
  twinType: string;
  /** The device's tags when the twin last wrote the alarm, so the fleet list can filter by tag. */
  tags: string[];
}

/** A custom event a twin's reaction emitted. */
export interface TwinEventDoc {
  _id: string; // `${org}/${deviceId}/${id}`
  org: string;
  deviceId: string;
  id: string;
  name: string;
  data: StoredValue;
  at: number;
}
