// Covers the electricity-meter twin type: its status rules, its energy register, and which datapoints are significant.
import {
  type MeterState,
  METER_DEFAULT_POWER_LIMIT_W,
  electricityMeterTwin,
  meterStatus,
} from '../../../twins/electricity-meter.twin';
import type { Datapoint, LatestValue } from '../../../twins/types';

const T0 = 1_700_000_000_000;
const dp = (datastreamId: string, value: unknown, at = T0): Datapoint => ({
  datastreamId,
  feed: 'default',
  value,
  at,
});
const seen = (id: string, value: unknown): LatestValue => ({ id, feed: 'default', value, at: T0 - 1_000 });

/** Feeds datapoints through the type, as the twin core does. */
const applyAll = (...datapoints: Datapoint[]): MeterState =>
  datapoints.reduce((s, d) => electricityMeterTwin.applyDatapoint(s, d), electricityMeterTwin.initialState());

describe('meterStatus', () => {
  it('is NO_DATA before any voltage or power arrives', () => {
    expect(meterStatus(electricityMeterTwin.initialState())).toBe('NO_DATA');
    expect(meterStatus(applyAll(dp('energy.import', 12.5)))).toBe('NO_DATA');
  });

  it('is OK with nominal voltage and power under the limit', () => {
    expect(meterStatus(applyAll(dp('voltage', 231), dp('power.active', 3_000)))).toBe('OK');
  });

  it('is OK with only power known and under the limit', () => {
    expect(meterStatus(applyAll(dp('power.active', METER_DEFAULT_POWER_LIMIT_W)))).toBe('OK');
  });

  it('is OVERLOAD when power exceeds the default limit', () => {
    expect(
      meterStatus(applyAll(dp('voltage', 230), dp('power.active', METER_DEFAULT_POWER_LIMIT_W + 1))),
    ).toBe('OVERLOAD');
  });

  it('is OVERLOAD against the limit the meter reported in power.limit', () => {
    expect(meterStatus(applyAll(dp('power.limit', 4_000), dp('power.active', 4_500)))).toBe('OVERLOAD');
    expect(meterStatus(applyAll(dp('power.limit', 20_000), dp('power.active', 15_000)))).toBe('OK');
  });

  it('ignores a power.limit that is not positive', () => {
    expect(applyAll(dp('power.limit', 0)).powerLimitW).toBe(METER_DEFAULT_POWER_LIMIT_W);
    expect(applyAll(dp('power.limit', -5)).powerLimitW).toBe(METER_DEFAULT_POWER_LIMIT_W);
  });

  it('is VOLTAGE_ALARM outside ±10 % of 230 V and OK just inside', () => {
    expect(meterStatus(applyAll(dp('voltage', 253)))).toBe('OK');
    expect(meterStatus(applyAll(dp('voltage', 207)))).toBe('OK');
    expect(meterStatus(applyAll(dp('voltage', 253.5)))).toBe('VOLTAGE_ALARM');
    expect(meterStatus(applyAll(dp('voltage', 206)))).toBe('VOLTAGE_ALARM');
  });

  it('puts VOLTAGE_ALARM before OVERLOAD', () => {
    expect(meterStatus(applyAll(dp('voltage', 180), dp('power.active', 50_000)))).toBe('VOLTAGE_ALARM');
  });

  it('is OUTAGE when voltage drops below 1 V, whatever the power', () => {
    expect(meterStatus(applyAll(dp('voltage', 0)))).toBe('OUTAGE');
    expect(meterStatus(applyAll(dp('power.active', 50_000), dp('voltage', 0.5)))).toBe('OUTAGE');
  });
});

describe('electricityMeterTwin.applyDatapoint', () => {
  it('tracks energy, power and voltage from their datastreams', () => {
    expect(applyAll(dp('energy.import', 10), dp('power.active', 500), dp('voltage', 229))).toMatchObject({
      energyKWh: 10,
      powerW: 500,
      voltageV: 229,
      registerResets: 0,
    });
  });

  it('counts registerResets each time the energy register goes backwards', () => {
    const state = applyAll(
      dp('energy.import', 100),
      dp('energy.import', 120),
      dp('energy.import', 3),
      dp('energy.import', 5),
      dp('energy.import', 1),
    );
    expect(state.registerResets).toBe(2);
    expect(state.energyKWh).toBe(1);
  });

  it('does not count a repeated energy value as a reset', () => {
    expect(applyAll(dp('energy.import', 100), dp('energy.import', 100)).registerResets).toBe(0);
  });

  it('ignores non-numeric values and unknown datastreams, returning the same state', () => {
    const state = applyAll(dp('voltage', 230));
    expect(electricityMeterTwin.applyDatapoint(state, dp('voltage', '231'))).toBe(state);
    expect(electricityMeterTwin.applyDatapoint(state, dp('voltage', Number.NaN))).toBe(state);
    expect(electricityMeterTwin.applyDatapoint(state, dp('temperature', 20))).toBe(state);
  });

  it('does not mutate the state it is given', () => {
    const state = electricityMeterTwin.initialState();
    const before = { ...state };
    electricityMeterTwin.applyDatapoint(state, dp('voltage', 230));
    expect(state).toEqual(before);
  });
});

describe('electricityMeterTwin.isSignificant', () => {
  it('treats the first value of any datastream as significant', () => {
    expect(electricityMeterTwin.isSignificant(dp('power.active', 10), undefined)).toBe(true);
    expect(electricityMeterTwin.isSignificant(dp('something.else', 'x'), undefined)).toBe(true);
  });

  it('treats voltage crossing the tolerance band as significant, both ways', () => {
    expect(electricityMeterTwin.isSignificant(dp('voltage', 190), seen('voltage', 230))).toBe(true);
    expect(electricityMeterTwin.isSignificant(dp('voltage', 230), seen('voltage', 190))).toBe(true);
    expect(electricityMeterTwin.isSignificant(dp('voltage', 0), seen('voltage', 230))).toBe(true);
  });

  it('treats voltage moving within the band as not significant', () => {
    expect(electricityMeterTwin.isSignificant(dp('voltage', 235), seen('voltage', 228))).toBe(false);
  });

  // Regression: OUTAGE and VOLTAGE_ALARM were one band, so a drop to 0 V from an alarm waited for the next interval.
  it('treats a drop from a voltage alarm to an outage as significant, since it changes the status', () => {
    const before = applyAll(dp('voltage', 190));
    const after = electricityMeterTwin.applyDatapoint(before, dp('voltage', 0));
    expect(meterStatus(before)).not.toBe(meterStatus(after));
    expect(electricityMeterTwin.isSignificant(dp('voltage', 0), seen('voltage', 190))).toBe(true);
  });

  it('treats an ordinary power change as not significant', () => {
    expect(electricityMeterTwin.isSignificant(dp('power.active', 3_100), seen('power.active', 3_000))).toBe(
      false,
    );
  });

  it('treats a forward energy reading as not significant and a backwards one as significant', () => {
    expect(electricityMeterTwin.isSignificant(dp('energy.import', 101), seen('energy.import', 100))).toBe(
      false,
    );
    expect(electricityMeterTwin.isSignificant(dp('energy.import', 2), seen('energy.import', 100))).toBe(true);
  });

  it('treats every power.limit change as significant', () => {
    expect(electricityMeterTwin.isSignificant(dp('power.limit', 5_000), seen('power.limit', 6_000))).toBe(
      true,
    );
  });

  it('declares a 10 s maximum signal delay', () => {
    expect(electricityMeterTwin.maxSignalDelayMs).toBe(10_000);
  });
});
