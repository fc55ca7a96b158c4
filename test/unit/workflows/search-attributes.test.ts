// Covers TwinFlow's Temporal search attributes: their names and types.
import { SearchAttributeType } from '@temporalio/common';
import {
  TWINFLOW_DEVICE_ID,
  TWINFLOW_JOB,
  TWINFLOW_OPERATION,
  TWINFLOW_ORG,
  TWINFLOW_SEARCH_ATTRIBUTES,
  TWINFLOW_STATUS,
  TWINFLOW_TWIN_TYPE,
} from '../../../workflows/search-attributes';

describe('TwinFlow search attributes', () => {
  it('names the six keys as operators filter by them', () => {
    expect(
      [
        TWINFLOW_ORG,
        TWINFLOW_DEVICE_ID,
        TWINFLOW_TWIN_TYPE,
        TWINFLOW_STATUS,
        TWINFLOW_OPERATION,
        TWINFLOW_JOB,
      ].map((k) => k.name),
    ).toEqual([
      'TwinflowOrg',
      'TwinflowDeviceId',
      'TwinflowTwinType',
      'TwinflowStatus',
      'TwinflowOperation',
      'TwinflowJob',
    ]);
  });

  it('declares every key as a Keyword', () => {
    for (const key of [
      TWINFLOW_ORG,
      TWINFLOW_DEVICE_ID,
      TWINFLOW_TWIN_TYPE,
      TWINFLOW_STATUS,
      TWINFLOW_OPERATION,
      TWINFLOW_JOB,
    ]) {
      expect(key.type).toBe(SearchAttributeType.KEYWORD);
    }
  });

  it('lists exactly the six names as Keyword for the dev server and the operator service', () => {
    expect(TWINFLOW_SEARCH_ATTRIBUTES).toEqual({
      TwinflowAlarm: 'Keyword',
      TwinflowOrg: 'Keyword',
      TwinflowDeviceId: 'Keyword',
      TwinflowTwinType: 'Keyword',
      TwinflowStatus: 'Keyword',
      TwinflowOperation: 'Keyword',
      TwinflowJob: 'Keyword',
    });
  });
});
