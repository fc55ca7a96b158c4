// Latest pages: a stable, even spread of device ids, and device ids as field names.
import { LATEST_PAGES, deviceField, latestPageId, latestPageOf } from '../../../inventory/latest-pages';

describe('latest pages', () => {
  it('puts a device on the same page every time, within range', () => {
    for (const id of ['meter-1', 'a', 'Z.9:x@y-z_', 'x'.repeat(128)]) {
      const page = latestPageOf(id);
      expect(page).toBe(latestPageOf(id));
      expect(Number.isInteger(page) && page >= 0 && page < LATEST_PAGES).toBe(true);
    }
  });

  it('spreads 10,000 sequential ids evenly over the pages', () => {
    const counts = new Array<number>(LATEST_PAGES).fill(0);
    for (let i = 0; i < 10_000; i++) counts[latestPageOf(`mq-${i}`)]! += 1;
    const mean = 10_000 / LATEST_PAGES;
    expect(Math.min(...counts)).toBeGreaterThan(mean * 0.7);
    expect(Math.max(...counts)).toBeLessThan(mean * 1.3);
  });

  it('names a page by organization and number', () => {
    expect(latestPageId('acme', 7)).toBe('acme/7');
  });

  it('encodes the dots of a device id, so it is one field name, and keeps ids apart', () => {
    expect(deviceField('meter.1.a')).toBe('meter%2E1%2Ea');
    expect(deviceField('meter-1')).toBe('meter-1');
    expect(deviceField('a.b')).not.toBe(deviceField('a-b'));
  });
});
