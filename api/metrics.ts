// Prometheus metrics (prom-client): the process's own figures plus TwinFlow's counters, read at each scrape.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** Where the figures come from; each is read when Prometheus scrapes. */
export interface MetricSources {
  readonly ingest: () => {
    batches: number;
    items: number;
    queued: number;
    largestBatch: number;
    refused: number;
    commitSeconds: number;
    commitEncodeSeconds: number;
    commitInsertSeconds: number;
    historySeconds: number;
    latestSeconds: number;
    latestPages: number;
    pendingCommits: number;
    heldPoints: number;
    adoptedCommits: number;
  };
  readonly twinSignals: () => {
    reports: number;
    signalsSent: number;
    signalsFailed: number;
    devicesPending: number;
  };
  readonly mqtt?: () => Readonly<Record<string, number>>;
  /** The ingest's device directory (DeviceDirectory.counters). */
  readonly directory?: () => {
    lookups: number;
    refreshes: number;
    refreshFailures: number;
    scans: number;
    scanFailures: number;
    cached: number;
    refreshQueue: number;
  };
  /** The view of the pending markers that answers empty polls (PendingMarkerView.counters). */
  readonly pendingMarkers?: () => { devices: number; writers: number };
}

/** A counter whose value is read from a source that already counts. */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > last) this.inc(now - last);
      last = Math.max(last, now);
    },
  });
}

function readGauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

type Kind = 'counter' | 'gauge';

type IngestFigures = ReturnType<MetricSources['ingest']>;

/** The ingest pipeline's figures: name, kind, help, and the field of `MetricSources.ingest` each mirrors. */
const INGEST_FIGURES: readonly [string, Kind, string, keyof IngestFigures][] = [
  ['twinflow_ingest_messages_total', 'counter', 'Messages stored by the ingest pipeline', 'items'],
  ['twinflow_ingest_writes_total', 'counter', 'Group-commit writes (many messages each)', 'batches'],
  [
    'twinflow_ingest_refused_total',
    'counter',
    'Messages refused because the ingest queue was full',
    'refused',
  ],
  [
    'twinflow_ingest_commit_write_seconds_total',
    'counter',
    'Time group-commit writes spent storing their commit document',
    'commitSeconds',
  ],
  [
    'twinflow_ingest_commit_encode_seconds_total',
    'counter',
    'Of the commit writes: time encoding the points (JSON, then deflate on the thread pool)',
    'commitEncodeSeconds',
  ],
  [
    'twinflow_ingest_commit_insert_seconds_total',
    'counter',
    'Of the commit writes: time from sending the insert to its answer',
    'commitInsertSeconds',
  ],
  [
    'twinflow_ingest_history_write_seconds_total',
    'counter',
    'Time the write-back spent storing datapoint history chunks',
    'historySeconds',
  ],
  [
    'twinflow_ingest_latest_write_seconds_total',
    'counter',
    'Time the write-back spent storing latest pages',
    'latestSeconds',
  ],
  ['twinflow_ingest_latest_pages_total', 'counter', 'Latest pages written back', 'latestPages'],
  [
    'twinflow_ingest_adopted_commits_total',
    'counter',
    "Commits read back from this instance's earlier starts or adopted from an instance silent past its lease",
    'adoptedCommits',
  ],
  [
    'twinflow_ingest_pending_commits',
    'gauge',
    'Commit documents not yet fully written back',
    'pendingCommits',
  ],
  [
    'twinflow_ingest_held_points',
    'gauge',
    'Datapoints held in process until the history write-back',
    'heldPoints',
  ],
  ['twinflow_ingest_queued', 'gauge', 'Messages waiting for the next write', 'queued'],
];

/** TwinFlow's own figures: name, kind, help and where each is read. */
function figures(sources: MetricSources): [string, Kind, string, () => number][] {
  const twins = sources.twinSignals;
  return [
    ...fromSource(INGEST_FIGURES, sources.ingest),
    [
      'twinflow_twin_signals_total',
      'counter',
      'Coalesced telemetry signals sent to twins',
      () => twins().signalsSent,
    ],
    [
      'twinflow_twin_signal_failures_total',
      'counter',
      'Telemetry signals that failed',
      () => twins().signalsFailed,
    ],
    [
      'twinflow_twin_devices_pending',
      'gauge',
      'Devices with data their twin has not been told yet (waiting for their delay or the signal budget)',
      () => twins().devicesPending,
    ],
    ['twinflow_twin_reports_total', 'counter', 'Telemetry reports before coalescing', () => twins().reports],
  ];
}

const MQTT_COUNTERS = [
  ['accepted', 'MQTT messages taken in and acknowledged'],
  ['rejected', 'MQTT messages acknowledged but refused (malformed, unknown device)'],
  ['refusedLogins', 'MQTT logins refused'],
  ['refusedTopics', 'MQTT publishes or subscriptions refused for their topic'],
  ['storeFailures', 'MQTT messages left unacknowledged because they could not be stored'],
  ['delivered', 'Operation requests published to MQTT devices'],
] as const;

type DirectoryFigures = ReturnType<NonNullable<MetricSources['directory']>>;
type PendingViewFigures = ReturnType<NonNullable<MetricSources['pendingMarkers']>>;

/** The device directory's figures: name, kind, help, and the field of `MetricSources.directory` each mirrors. */
const DIRECTORY_FIGURES: readonly [string, Kind, string, keyof DirectoryFigures][] = [
  ['twinflow_device_directory_lookups_total', 'counter', 'Device lookups, one device each', 'lookups'],
  [
    'twinflow_device_directory_refreshes_total',
    'counter',
    'Lookups that refreshed an entry in the background',
    'refreshes',
  ],
  [
    'twinflow_device_directory_refresh_failures_total',
    'counter',
    'Background refreshes that failed',
    'refreshFailures',
  ],
  ['twinflow_device_directory_scans_total', 'counter', "Reads of a whole organization's devices", 'scans'],
  ['twinflow_device_directory_scan_failures_total', 'counter', 'Scans that failed', 'scanFailures'],
  ['twinflow_device_directory_entries', 'gauge', 'Devices held by the directory', 'cached'],
  [
    'twinflow_device_directory_refresh_queue',
    'gauge',
    'Entries waiting for a background refresh',
    'refreshQueue',
  ],
];

/** The pending-marker view's figures, as DIRECTORY_FIGURES. */
const PENDING_VIEW_FIGURES: readonly [string, Kind, string, keyof PendingViewFigures][] = [
  ['twinflow_pending_view_devices', 'gauge', 'Devices whose pending marker this process holds', 'devices'],
  ['twinflow_pending_view_writers', 'gauge', 'Processes whose marker writes this process follows', 'writers'],
];

/** A table of figures read from one source, when the process has that source. */
function fromSource<F>(
  table: readonly [string, Kind, string, keyof F][],
  source: (() => F) | undefined,
): [string, Kind, string, () => number][] {
  if (!source) return [];
  return table.map(([name, kind, help, field]) => [name, kind, help, () => Number(source()[field])]);
}

export function createMetrics(sources: MetricSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'twinflow_' });
  for (const [name, kind, help, read] of [
    ...figures(sources),
    ...fromSource(DIRECTORY_FIGURES, sources.directory),
    ...fromSource(PENDING_VIEW_FIGURES, sources.pendingMarkers),
  ]) {
    if (kind === 'counter') mirroredCounter(registry, name, help, read);
    else readGauge(registry, name, help, read);
  }
  const mqtt = sources.mqtt;
  if (mqtt) {
    readGauge(
      registry,
      'twinflow_mqtt_connected_clients',
      'Devices connected to the embedded broker',
      () => mqtt().connected ?? 0,
    );
    for (const [key, help] of MQTT_COUNTERS) {
      const name = `twinflow_mqtt_${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`;
      mirroredCounter(registry, name, help, () => mqtt()[key] ?? 0);
    }
  }
  return registry;
}
