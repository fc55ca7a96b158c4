// Long-lived twins keep their history bounded: they continue as new and carry their whole state.
import { getTwinStateQuery } from '../../workflows/twin.messages';
import {
  type TwinflowProcess,
  apiClient,
  collectBody,
  eventually,
  startTwinflow,
  temporalClient,
} from './harness';

describe('a twin with a long history', () => {
  let tf: TwinflowProcess;
  beforeAll(async () => {
    // A low threshold so it really happens here; production uses the server's suggestion (4,096 events).
    tf = await startTwinflow({
      env: {
        TWINFLOW_TWIN_MAX_HISTORY: '40',
        TWINFLOW_TWIN_SIGNAL_INTERVAL_MS: '0',
        TWINFLOW_SNAPSHOT_DEBOUNCE_MS: '0',
      },
    });
  });
  afterAll(async () => {
    await tf?.stop();
  });

  it('continues as new several times without losing or double-counting data', async () => {
    const admin = apiClient(tf.baseUrl, tf.adminKey);
    const key = (await admin.post('/north/v1/devices', { id: 'chatty', attributes: { site: 'x' } })).body
      .apiKey;
    const device = apiClient(tf.baseUrl, key);
    const total = 60;
    const temporal = await temporalClient();
    const twin = temporal.client.workflow.getHandle('twin/default/chatty');
    for (let n = 0; n < total; n++) {
      const res = await device.post(
        '/south/v80/devices/chatty/collect/iot',
        collectBody([{ id: `ds-${n}`, datapoints: [{ value: n }] }]),
      );
      expect(res.status).toBe(201);
      // Wait until the twin has it, so every message is its own signal (the notifier would otherwise coalesce them).
      await eventually(async () =>
        (await twin.query(getTwinStateQuery)).counters.datapoints === n + 1 ? true : undefined,
      );
    }
    const view = await eventually(async () => {
      const v = await admin.get('/north/v1/devices/chatty');
      return v.body.twin?.source === 'live' && v.body.twin.counters.datapoints === total ? v.body : undefined;
    }, 60_000);
    expect(view.twin.reported).toHaveLength(total);
    expect(view.twin.counters.duplicateBatches).toBe(0);
    expect(view.attributes).toEqual({ site: 'x' });

    try {
      const runs: string[] = [];
      for await (const wf of temporal.client.workflow.list({ query: `WorkflowId = 'twin/default/chatty'` }))
        runs.push(wf.status.name);
      expect(runs.filter((s) => s === 'CONTINUED_AS_NEW').length).toBeGreaterThanOrEqual(3);
      expect(runs.filter((s) => s === 'RUNNING')).toHaveLength(1);
      // Search attributes survive continue-as-new, so the twin stays findable.
      const found: string[] = [];
      for await (const wf of temporal.client.workflow.list({
        query: `TwinflowDeviceId = 'chatty' AND ExecutionStatus = 'Running'`,
      }))
        found.push(wf.workflowId);
      expect(found).toEqual(['twin/default/chatty']);
    } finally {
      await temporal.close();
    }
    // The profile carried across runs still accepts changes.
    const patched = await admin.patch('/north/v1/devices/chatty', { attributes: { site: 'y' } });
    expect(patched.status).toBe(200);
    expect(patched.body.attributes).toEqual({ site: 'y' });
  });
});
