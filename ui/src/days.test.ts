import { describe, expect, it } from 'vitest';
import { addDays, dayLabel, daySlots, dayTicks } from './days';

const days = (first: string, n: number) => Array.from({ length: n }, (_, i) => addDays(first, i));

describe('UTC days', () => {
  it('fills every day of a window, across a month and a leap day, zero where nothing was used', () => {
    const lead_time = { p50_seconds: null, p95_seconds: null, max_seconds: null, samples: 0 };
    const slots = daySlots([{ date: '2028-03-01', cost_usd: 2, total_tokens: 10, lead_time }], '2028-02-27', '2028-03-02');
    expect(slots.map((s) => s.date)).toEqual(['2028-02-27', '2028-02-28', '2028-02-29', '2028-03-01', '2028-03-02']);
    expect(slots.map((s) => s.cost_usd)).toEqual([0, 0, 0, 2, 0]);
    expect(slots.map((s) => s.total_tokens)).toEqual([0, 0, 0, 10, 0]);
    expect(daySlots([], '2026-12-06', '2026-12-06')).toHaveLength(1);
  });

  it('labels at most about as many days as fit, always the first and the last', () => {
    const ninety = days('2026-09-08', 90);
    for (const most of [2, 5, 8, 13]) {
      const ticks = dayTicks(ninety, most);
      expect(ticks[0]).toBe('2026-09-08');
      expect(ticks.at(-1)).toBe('2026-12-06');
      expect(ticks.length).toBeLessThanOrEqual(most + 1);
      expect([...ticks].sort()).toEqual(ticks);
    }
    // A week fits whole.
    expect(dayTicks(days('2026-11-30', 7), 10)).toHaveLength(7);
    expect(dayLabel('2026-12-06')).toBe('Dec 6');
  });
});
