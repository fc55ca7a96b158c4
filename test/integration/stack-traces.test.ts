// Twins run without the SDK's stack-trace promise hook unless TWINFLOW_WORKFLOW_STACK_TRACES=on: the Web UI's
// "Stack Trace" tab (the `__stack_trace` query) then says so, and with the setting on it shows the twin's stack.
import { apiClient, startTwinflow, temporalClient, type TwinflowProcess } from './harness';
import { twinWorkflowId } from '../../workflows/ids';

async function stackTraceOf(tf: TwinflowProcess, deviceId: string): Promise<string> {
  const admin = apiClient(tf.baseUrl, tf.adminKey);
  const created = await admin.post('/north/v1/devices', { id: deviceId });
  expect(created.status).toBe(201);
  const org = (await admin.get('/north/v1/me')).body.org as string;
  const temporal = await temporalClient();
  try {
    const handle = temporal.client.workflow.getHandle(twinWorkflowId(org, deviceId));
    return await handle.query<string>('__stack_trace');
  } finally {
    await temporal.close();
  }
}

describe('workflow stack traces', () => {
  let off: TwinflowProcess | undefined;
  let on: TwinflowProcess | undefined;
  afterAll(async () => {
    await Promise.all([off?.stop(), on?.stop()]);
  });

  it('are off by default: the query says they are not enabled', async () => {
    off = await startTwinflow();
    await expect(stackTraceOf(off, 'quiet-twin')).rejects.toThrow(/stack traces are not enabled/);
    expect(off.output()).not.toMatch(/promiseHooks\.createHook is not available/);
  }, 120_000);

  it('are there with TWINFLOW_WORKFLOW_STACK_TRACES=on', async () => {
    on = await startTwinflow({ env: { TWINFLOW_WORKFLOW_STACK_TRACES: 'on' } });
    const trace = await stackTraceOf(on, 'traced-twin');
    expect(trace).toMatch(/twin/i);
  }, 120_000);
});
