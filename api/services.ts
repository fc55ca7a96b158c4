// Everything routes need, built once per process and reached through the context (so tests can build their own).
import type { Logger } from 'pino';
import type { AlarmRepository } from '../inventory/alarms.repo';
import type { CertificateRepository } from '../inventory/certificates.repo';
import type { CredentialChanges } from '../inventory/credential-changes.repo';
import type { DatapointRepository } from '../inventory/datapoints.repo';
import type { DeviceRepository } from '../inventory/devices.repo';
import type { EventRepository } from '../inventory/events.repo';
import type { EventHub } from '../events/hub';
import type { EventWriter } from '../events/writer';
import type {
  AuditRepository,
  OrganizationRepository,
  RoleRepository,
  SessionRepository,
  UserRepository,
} from '../inventory/identity.repo';
import type { ConnectorFunctions } from '../functions/connector';
import type { ForwarderRepository } from '../inventory/forwarders.repo';
import type { ForwardersService } from '../forwarders/forwarders.service';
import type { KeyRepository } from '../inventory/keys.repo';
import type { JobRepository } from '../inventory/jobs.repo';
import type { OperationRepository } from '../inventory/operations.repo';
import type { Authenticator } from '../access/authenticator';
import type { RoleResolver } from '../access/roles';
import type { LoginLimiter } from '../access/login-limiter';
import type { DeviceDirectory } from '../ingest/device-directory';
import type { Ingestor } from '../ingest/ingestor';
import type { JobSchedulesService } from '../operations/job-schedules.service';
import type { JobsService } from '../operations/jobs.service';
import type { OperationsService } from '../operations/operations.service';
import type { TwinGateway } from '../operations/twin-gateway';

export interface ReadinessCheck {
  readonly ok: boolean;
  readonly error?: string;
}

export interface Services {
  readonly devices: DeviceRepository;
  readonly keys: KeyRepository;
  /** Organizations' CAs, device certificates and credential policies. */
  readonly certificates: CertificateRepository;
  /** Announced changes to keys, certificates, CAs, credential policies, users, sessions and roles (CredentialFeed). */
  readonly credentialChanges: CredentialChanges;
  readonly datapoints: DatapointRepository;
  readonly operations: OperationRepository;
  readonly jobs: JobRepository;
  /** Alarms and twin events, as twins write them. */
  readonly alarms: AlarmRepository;
  /** The fleet event log: what happened, numbered per organization. */
  readonly events: EventRepository;
  /** This process's live event streams: one tail per organization with readers. */
  readonly eventHub: EventHub;
  /** Appends to the event log, one batch per organization for concurrent requests. */
  readonly eventWriter: EventWriter;
  /** Forwarders: where events go; the service starts, pauses and resumes their workflows. */
  readonly forwarders: ForwardersService;
  readonly forwarderRepo: ForwarderRepository;
  readonly auth: Authenticator;
  readonly organizations: OrganizationRepository;
  readonly users: UserRepository;
  readonly roles: RoleRepository;
  readonly roleResolver: RoleResolver;
  readonly sessions: SessionRepository;
  readonly audit: AuditRepository;
  readonly loginLimiter: LoginLimiter;
  /** Prometheus metrics, served on GET /metrics. */
  readonly metrics: { readonly contentType: string; metrics(): Promise<string> };
  /** Refresh tokens live this long (ms). */
  readonly refreshTtlMs: number;
  readonly twins: TwinGateway;
  /** Operations for every transport: request, read, cancel, device answers, pending hand-over. */
  readonly operationsService: OperationsService;
  /** Jobs: one operation over many devices, as durable rollouts. */
  readonly jobsService: JobsService;
  /** Jobs started at a time or recurring, through Temporal Schedules. */
  readonly jobSchedules: JobSchedulesService;
  readonly directory: DeviceDirectory;
  readonly ingestor: Ingestor;
  /** Connector functions: their repository, the sandbox engine, and the translation for HTTP and MQTT ingest. */
  readonly functions: ConnectorFunctions;
  readonly logger: Logger;
  readonly now: () => number;
  /** Named checks of the services the API depends on (temporal, mongodb). */
  readonly readiness: () => Promise<Record<string, ReadinessCheck>>;
}
