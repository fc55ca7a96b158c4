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
    historySeconds: number;
    latestSeconds: number;
  };
  readonly twinSignals: () => {
    reports: number;
    signalsSent: number;
    signalsFailed: number;
    devicesPending: number;
  };
  readonly mqtt?: () => Readonly<Record<string, number>>;
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

export function createMetrics(sources: MetricSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'twinflow_' });
  mirroredCounter(
    registry,
    'twinflow_ingest_messages_total',
    'Messages stored by the ingest pipeline',
    () => sources.ingest().items,
  );
  mirroredCounter(
    registry,
    'twinflow_ingest_writes_total',
    'Group-commit writes (many messages each)',
    () => sources.ingest().batches,
  );
  mirroredCounter(
    registry,
    'twinflow_ingest_refused_total',
    'Messages refused because the ingest queue was full',
    () => sources.ingest().refused,
  );
  mirroredCounter(
    registry,
    'twinflow_ingest_history_write_seconds_total',
    'Time group-commit writes spent storing datapoint history',
    () => sources.ingest().historySeconds,
  );
  mirroredCounter(
    registry,
    'twinflow_ingest_latest_write_seconds_total',
    'Time group-commit writes spent storing latest values',
    () => sources.ingest().latestSeconds,
  );
  readGauge(
    registry,
    'twinflow_ingest_queued',
    'Messages waiting for the next write',
    () => sources.ingest().queued,
  );
  mirroredCounter(
    registry,
    'twinflow_twin_signals_total',
    'Coalesced telemetry signals sent to twins',
    () => sources.twinSignals().signalsSent,
  );
  mirroredCounter(
    registry,
    'twinflow_twin_signal_failures_total',
    'Telemetry signals that failed',
    () => sources.twinSignals().signalsFailed,
  );
  readGauge(
    registry,
    'twinflow_twin_devices_pending',
    'Devices with data their twin has not been told yet (waiting for their delay or the signal budget)',
    () => sources.twinSignals().devicesPending,
  );
  mirroredCounter(
    registry,
    'twinflow_twin_reports_total',
    'Telemetry reports before coalescing',
    () => sources.twinSignals().reports,
  );
  const mqtt = sources.mqtt;
  if (mqtt) {
    readGauge(
      registry,
      'twinflow_mqtt_connected_clients',
      'Devices connected to the embedded broker',
      () => mqtt().connected ?? 0,
    );
    for (const [key, help] of [
      ['accepted', 'MQTT messages taken in and acknowledged'],
      ['rejected', 'MQTT messages acknowledged but refused (malformed, unknown device)'],
      ['refusedLogins', 'MQTT logins refused'],
      ['refusedTopics', 'MQTT publishes or subscriptions refused for their topic'],
      ['storeFailures', 'MQTT messages left unacknowledged because they could not be stored'],
      ['delivered', 'Operation requests published to MQTT devices'],
    ] as const) {
      const name = `twinflow_mqtt_${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`;
      mirroredCounter(registry, name, help, () => mqtt()[key] ?? 0);
    }
  }
  return registry;
}
