// Commits are stored deflated; commits a process stored before that (plain JSON) must still be read back.
import { deflateRawSync } from 'node:zlib';
import { Binary } from 'mongodb';
import { adoptionPlan, commitOwner, commitPoints } from '../../../inventory/commit-log.repo';
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

describe('commit ownership', () => {
  const self = { instance: 'host-a:8080', incarnation: 'inc2' };
  const now = 1_000_000;
  const lease = 60_000;

  it('reads the instance and incarnation a commit id names, and names commits from before instances', () => {
    expect(commitOwner('host-a:8080/inc1/0000000a')).toEqual({
      instance: 'host-a:8080',
      incarnation: 'inc1',
    });
    expect(commitOwner('6f1c/0000000a')).toEqual({ instance: 'unnamed-6f1c', incarnation: '6f1c' });
  });

  it("takes its own name's earlier starts at once and never its own current start", () => {
    const plan = adoptionPlan(
      ['host-a:8080/inc1/0', 'host-a:8080/inc2/0', 'host-a:8080/inc1/1'],
      self,
      new Map([['host-a:8080', now]]),
      now,
      lease,
    );
    expect(plan).toEqual({ own: ['host-a:8080/inc1/0', 'host-a:8080/inc1/1'], silent: [] });
  });

  it('leaves a live instance alone and names the silent ones, including those with no heartbeat at all', () => {
    const plan = adoptionPlan(
      ['host-b:8080/x/0', 'host-c:8080/y/0', 'host-c:8080/y/1', '6f1c/0'],
      self,
      new Map([
        ['host-b:8080', now - lease + 1],
        ['host-c:8080', now - lease - 1],
      ]),
      now,
      lease,
    );
    expect(plan).toEqual({ own: [], silent: ['host-c:8080', 'unnamed-6f1c'] });
  });
});
