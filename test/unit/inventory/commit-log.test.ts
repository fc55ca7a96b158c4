// Commits are stored deflated; commits a process stored before that (plain JSON) must still be read back.
import { deflateRawSync } from 'node:zlib';
import { Binary } from 'mongodb';
import { commitPoints } from '../../../inventory/commit-log.repo';
import type { DatapointDoc } from '../../../inventory/documents';

const points: DatapointDoc[] = [
  { org: 'default', deviceId: 'm-1', ds: 'power.active', feed: 'default', value: 1200, at: 1, receivedAt: 2 },
  { org: 'default', deviceId: 'm-2', ds: 'voltage', feed: 'default', value: 'ü230', at: 3, receivedAt: 4 },
];

describe('commitPoints', () => {
  it('reads a deflated commit', () => {
    const z = new Binary(deflateRawSync(Buffer.from(JSON.stringify(points)), { level: 1 }));
    expect(commitPoints({ z })).toEqual(points);
  });

  it('reads a commit stored as plain JSON before commits were deflated', () => {
    expect(commitPoints({ points: JSON.stringify(points) })).toEqual(points);
  });

  it('refuses a damaged commit loudly rather than reading it as empty', () => {
    expect(() => commitPoints({ z: new Binary(Buffer.from('not deflate')) })).toThrow();
  });
});
