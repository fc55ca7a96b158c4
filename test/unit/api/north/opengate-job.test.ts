// OpenGate's job body mapped onto a TwinFlow job: operation parameters, targets, and the schedule's start and stop.
import { fromOpenGateJob, openGateJobSchema, openGateStart } from '../../../../api/north/opengate-job';

const NOW = Date.UTC(2026, 10, 26, 12, 0);
const body = (schedule?: unknown) =>
  openGateJobSchema.safeParse({
    job: {
      request: {
        name: 'REBOOT_EQUIPMENT',
        operationParameters: { timeout: 60_000, retries: 2, retriesDelay: 5_000 },
        target: { append: { entities: ['meter-1', 'meter-2'] } },
        ...(schedule !== undefined ? { schedule } : {}),
      },
    },
  });

function parsed(schedule?: unknown) {
  const r = body(schedule);
  if (!r.success) throw new Error(r.error.message);
  return r.data;
}

describe("OpenGate's job body", () => {
  it('maps the operation parameters and targets, and starts at once without a schedule', () => {
    const b = parsed();
    expect(fromOpenGateJob(b)).toMatchObject({
      order: { name: 'REBOOT_EQUIPMENT', timeoutMs: 60_000, retries: 2, retriesDelayMs: 5_000 },
      target: { deviceIds: ['meter-1', 'meter-2'] },
      rollout: { maxInFlight: 100, approveWaves: false },
    });
    expect(fromOpenGateJob(b).rollout).not.toHaveProperty('stopAt');
    expect(openGateStart(b, NOW)).toEqual({});
  });

  it('starts later at a date or after a delay; a start due now or past starts at once', () => {
    expect(openGateStart(parsed({ start: { delayed: 30_000 } }), NOW)).toEqual({ at: NOW + 30_000 });
    const date = '2026-11-27T22:00:00+01:00';
    expect(openGateStart(parsed({ start: { date } }), NOW)).toEqual({ at: Date.parse(date) });
    expect(openGateStart(parsed({ start: { delayed: 0 } }), NOW)).toEqual({});
    expect(openGateStart(parsed({ start: { date: '2020-01-01T00:00:00Z' } }), NOW)).toEqual({});
  });

  it('stops at a date, or a delay after the job starts', () => {
    const date = '2026-11-26T13:00:00Z';
    expect(fromOpenGateJob(parsed({ stop: { date } })).rollout.stopAt).toBe(Date.parse(date));
    expect(fromOpenGateJob(parsed({ stop: { delayed: 3_600_000 } })).rollout.stopAfterMs).toBe(3_600_000);
    expect(openGateStart(parsed({ start: { delayed: 60_000 }, stop: { delayed: 60_000 } }), NOW)).toEqual({
      at: NOW + 60_000,
    });
  });

  it('refuses a stop before the start, a stop that has passed, and a stop delay under a second', () => {
    const early = openGateStart(
      parsed({ start: { delayed: 3_600_000 }, stop: { date: '2026-11-26T12:30:00Z' } }),
      NOW,
    );
    expect(early).toEqual({ error: expect.stringMatching(/before the job starts/) });
    expect(openGateStart(parsed({ stop: { date: '2026-11-26T11:00:00Z' } }), NOW)).toEqual({
      error: expect.stringMatching(/before the job could start/),
    });
    expect(openGateStart(parsed({ stop: { delayed: 10 } }), NOW)).toEqual({
      error: expect.stringMatching(/at least 1000 ms/),
    });
  });

  it('refuses the schedule parts it does not take, naming their TwinFlow forms, and malformed moments', () => {
    const window = body({ window: { weekly: [] } });
    expect(window.success).toBe(false);
    expect(JSON.stringify(window.error?.issues)).toMatch(/rollout\.window/);
    expect(body({ periodicity: { pattern: 'DAILY' } }).success).toBe(false);
    expect(body({ start: { date: 'tomorrow' } }).success).toBe(false);
    expect(body({ start: { delayed: -1 } }).success).toBe(false);
    expect(body({ start: { date: '2026-11-27T22:00:00Z', delayed: 5 } }).success).toBe(false);
    // Past what a job's times take: refused by the schema, not failed later.
    expect(body({ stop: { date: '3000-01-01T00:00:00Z' } }).success).toBe(false);
    expect(body({ start: { date: '3000-01-01T00:00:00Z' } }).success).toBe(false);
  });
});
