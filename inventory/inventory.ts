// Opens the MongoDB inventory: typed collections and the indexes they need (FerretDB- and MongoDB-compatible).
import { type Collection, type Db, MongoClient } from 'mongodb';
import type {
  AlarmDoc,
  ApiKeyDoc,
  AuditDoc,
  CertificateAuthorityDoc,
  CommitDoc,
  IngestOwnerDoc,
  DatapointChunkDoc,
  DeviceCertificateDoc,
  DeviceCredentialPolicyDoc,
  DeviceDoc,
  FunctionDoc,
  JobDoc,
  JobExecutionDoc,
  LatestPageDoc,
  OperationDoc,
  OrganizationDoc,
  PendingChangeDoc,
  PendingMarkerDoc,
  PendingWriterDoc,
  RefreshTokenDoc,
  SpentRefreshTokenDoc,
  RoleDoc,
  SessionFamilyDoc,
  SettingDoc,
  TwinEventDoc,
  UserDoc,
} from './documents';
import type { EventBatchDoc, EventHeadDoc, EventKeyDoc, LegacyEventKeyDoc } from './events.repo';
import type { CredentialChangeDoc } from './credential-changes.repo';
import type { DeadLetterDoc, ForwarderDoc } from './forwarders.repo';

export interface Collections {
  readonly organizations: Collection<OrganizationDoc>;
  readonly devices: Collection<DeviceDoc>;
  readonly apiKeys: Collection<ApiKeyDoc>;
  readonly datapoints: Collection<DatapointChunkDoc>;
  readonly latest: Collection<LatestPageDoc>;
  /** The ingest commit log and its owners, in a database of their own (see ingestDbName). */
  readonly commits: Collection<CommitDoc>;
  readonly ingestOwners: Collection<IngestOwnerDoc>;
  /** Where the commit log lived before it had a database of its own: read once at start, then emptied. */
  readonly legacyCommits: Collection<CommitDoc>;
  readonly legacyIngestOwners: Collection<IngestOwnerDoc>;
  readonly operations: Collection<OperationDoc>;
  readonly pendingMarkers: Collection<PendingMarkerDoc>;
  /** The feed of marker writes that keeps every process's view of the markers current (PendingMarkerView). */
  readonly pendingWriters: Collection<PendingWriterDoc>;
  readonly pendingChanges: Collection<PendingChangeDoc>;
  readonly jobs: Collection<JobDoc>;
  readonly jobExecutions: Collection<JobExecutionDoc>;
  readonly users: Collection<UserDoc>;
  readonly roles: Collection<RoleDoc>;
  readonly refreshTokens: Collection<RefreshTokenDoc>;
  readonly spentRefreshTokens: Collection<SpentRefreshTokenDoc>;
  readonly sessions: Collection<SessionFamilyDoc>;
  readonly audit: Collection<AuditDoc>;
  readonly settings: Collection<SettingDoc>;
  readonly functions: Collection<FunctionDoc>;
  readonly certificateAuthorities: Collection<CertificateAuthorityDoc>;
  readonly deviceCertificates: Collection<DeviceCertificateDoc>;
  readonly credentialPolicies: Collection<DeviceCredentialPolicyDoc>;
  /** Announced credential changes, read by every process to forget what it cached (CredentialFeed). */
  readonly credentialChanges: Collection<CredentialChangeDoc>;
  readonly alarms: Collection<AlarmDoc>;
  readonly twinEvents: Collection<TwinEventDoc>;
  /** The event log: its batches, and beside them the keys of keyed events. */
  readonly events: Collection<EventBatchDoc | EventKeyDoc>;
  readonly eventHeads: Collection<EventHeadDoc>;
  /** Keys logged before they moved beside the batches: read, no longer written. */
  readonly eventKeys: Collection<LegacyEventKeyDoc>;
  readonly forwarders: Collection<ForwarderDoc>;
  readonly deadLetters: Collection<DeadLetterDoc>;
}

/**
 * The database of the ingest commit log, beside the inventory's. On the embedded FerretDB every database is a
 * SQLite file of its own, and a file has one write lock: in the inventory's file the commit inserts that
 * acknowledgements wait for queued behind the write-back's history inserts and latest-page rewrites and the
 * twins' writes, and SQLite's busy wait has no order, so one insert could lose the lock for seconds. In a file
 * of its own a commit insert waits only for the write-back's deletes of written-back commits. On MongoDB it is
 * just a second database.
 */
export const ingestDbName = (dbName: string): string => `${dbName}_ingest`;

export interface Inventory {
  readonly client: MongoClient;
  readonly db: Db;
  /** The ingest commit log's database (ingestDbName). */
  readonly ingestDb: Db;
  readonly collections: Collections;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Connections for everything but the commit log. The commit log has a pool of its own (COMMIT_POOL): with one
 * shared pool, a wave of device lookups (a fleet's directory entries expiring together) took all 32
 * connections for seconds on the embedded FerretDB, and each commit insert, which every acknowledgement waits
 * for, queued behind them: 2 s from send to answer for an insert the store itself served in 20 to 70 ms.
 */
const POOL = 32;
/** The commit log's connections: one insert at a time (the group commit), the write-back's deletes and reads. */
const COMMIT_POOL = 4;

export async function openInventory(uri: string, dbName: string): Promise<Inventory> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000, maxPoolSize: POOL });
  const commitClient = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000, maxPoolSize: COMMIT_POOL });
  try {
    await Promise.all([client.connect(), commitClient.connect()]);
  } catch (err) {
    await Promise.all([client.close(), commitClient.close()]);
    throw err;
  }
  const db = client.db(dbName);
  const ingestDb = commitClient.db(ingestDbName(dbName));
  const collections: Collections = {
    organizations: db.collection<OrganizationDoc>('organizations'),
    devices: db.collection<DeviceDoc>('devices'),
    apiKeys: db.collection<ApiKeyDoc>('api_keys'),
    datapoints: db.collection<DatapointChunkDoc>('datapoints'),
    latest: db.collection<LatestPageDoc>('latest'),
    commits: ingestDb.collection<CommitDoc>('ingest_commits'),
    ingestOwners: ingestDb.collection<IngestOwnerDoc>('ingest_owners'),
    legacyCommits: db.collection<CommitDoc>('ingest_commits'),
    legacyIngestOwners: db.collection<IngestOwnerDoc>('ingest_owners'),
    operations: db.collection<OperationDoc>('operations'),
    pendingMarkers: db.collection<PendingMarkerDoc>('pending_markers'),
    pendingWriters: db.collection<PendingWriterDoc>('pending_writers'),
    pendingChanges: db.collection<PendingChangeDoc>('pending_changes'),
    jobs: db.collection<JobDoc>('jobs'),
    jobExecutions: db.collection<JobExecutionDoc>('job_executions'),
    users: db.collection<UserDoc>('users'),
    roles: db.collection<RoleDoc>('roles'),
    refreshTokens: db.collection<RefreshTokenDoc>('refresh_tokens'),
    spentRefreshTokens: db.collection<SpentRefreshTokenDoc>('spent_refresh_tokens'),
    sessions: db.collection<SessionFamilyDoc>('sessions'),
    audit: db.collection<AuditDoc>('audit'),
    settings: db.collection<SettingDoc>('settings'),
    functions: db.collection<FunctionDoc>('functions'),
    certificateAuthorities: db.collection<CertificateAuthorityDoc>('certificate_authorities'),
    deviceCertificates: db.collection<DeviceCertificateDoc>('device_certificates'),
    credentialPolicies: db.collection<DeviceCredentialPolicyDoc>('credential_policies'),
    credentialChanges: db.collection<CredentialChangeDoc>('credential_changes'),
    alarms: db.collection<AlarmDoc>('alarms'),
    twinEvents: db.collection<TwinEventDoc>('twin_events'),
    events: db.collection<EventBatchDoc | EventKeyDoc>('events'),
    eventHeads: db.collection<EventHeadDoc>('event_heads'),
    eventKeys: db.collection<LegacyEventKeyDoc>('event_keys'),
    forwarders: db.collection<ForwarderDoc>('forwarders'),
    deadLetters: db.collection<DeadLetterDoc>('forwarder_dead_letters'),
  };
  await ensureIndexes(collections);
  return {
    client,
    db,
    ingestDb,
    collections,
    ping: async () => {
      await db.command({ ping: 1 });
    },
    close: async () => {
      await Promise.all([client.close(), commitClient.close()]);
    },
  };
}

async function ensureIndexes(c: Collections): Promise<void> {
  // One index per call: FerretDB 1.24 panics (and drops the connection) when one createIndexes names
  // several indexes that all exist already, which is every start after the first.
  const create = async <T extends object>(
    col: Collection<T>,
    specs: { key: Record<string, 1 | -1>; name: string }[],
  ) => {
    for (const spec of specs) await col.createIndex(spec.key, { name: spec.name });
  };
  // Device _id is `${org}/${deviceId}`, so the _id index already serves per-org lookups and cursors.
  await create(c.devices, [
    { key: { org: 1, type: 1, _id: 1 }, name: 'org_type' },
    { key: { org: 1, tags: 1, _id: 1 }, name: 'org_tags' },
    { key: { org: 1, 'twin.status': 1, _id: 1 }, name: 'org_status' },
    { key: { org: 1, lifecycle: 1, _id: 1 }, name: 'org_lifecycle' },
  ]);
  await create(c.apiKeys, [
    { key: { org: 1, kind: 1 }, name: 'org_kind' },
    { key: { org: 1, deviceId: 1 }, name: 'org_device' },
    { key: { org: 1, keyId: 1 }, name: 'org_key_id' },
  ]);
  await create(c.users, [{ key: { org: 1, _id: 1 }, name: 'org_users' }]);
  await create(c.sessions, [{ key: { userId: 1 }, name: 'user_sessions' }]);
  await create(c.audit, [{ key: { org: 1, _id: -1 }, name: 'org_newest' }]);
  // History reads are `_id` lookups; this index serves only MongoDB's retention delete (FerretDB scans).
  await create(c.datapoints, [{ key: { end: 1 }, name: 'expiry' }]);
  await create(c.certificateAuthorities, [{ key: { subject: 1 }, name: 'subject' }]);
  await create(c.deviceCertificates, [
    { key: { org: 1, deviceId: 1 }, name: 'org_device' },
    { key: { revokedAt: 1 }, name: 'revoked' },
  ]);
  // Read by time every second by every process; the embedded FerretDB scans, the collection is kept small.
  await create(c.credentialChanges, [{ key: { at: 1 }, name: 'at' }]);
  // Job and execution _ids start with the org (and the job): the _id index serves lists and cursors.
  await create(c.operations, [
    { key: { org: 1, deviceId: 1, createdAt: -1, id: -1 }, name: 'device_newest' },
  ]);
  // Alarm _ids are `${org}/${deviceId}/${name}`: the _id index serves a device's alarms and cursors.
  await create(c.alarms, [{ key: { org: 1, status: 1, _id: 1 }, name: 'org_status' }]);
  await create(c.twinEvents, [{ key: { org: 1, deviceId: 1, at: -1 }, name: 'device_newest' }]);
  // Event batches are read by `_id` alone; this index serves only MongoDB's retention delete.
  await create(c.events, [{ key: { lastAt: 1 }, name: 'expiry' }]);
}
