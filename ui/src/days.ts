// UTC days as the server counts them (`YYYY-MM-DD`), and the day-by-day slots a chart of
// a window draws: every day of the window once, a day without usage as zero.

import type { DailyPoint } from './api';

/** One day of a chart: what was spent and used that UTC day (0 when nothing was). */
export interface DaySlot {
  date: string;
  cost_usd: number;
  total_tokens: number;
}

/** `day` moved by `n` days (negative: earlier). */
export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/** The UTC day of `now`. */
export function utcDay(now: Date = new Date()): string {
  return now.toISOString().slice(0, 10);
}

/** The day's midnight in Unix seconds, as the chart's x axis counts. */
export function daySeconds(day: string): number {
  return Date.parse(`${day}T00:00:00Z`) / 1000;
}

/** Every day from `first` to `last`, both included; one slot per day, zero where `daily` has none. */
export function daySlots(daily: DailyPoint[], first: string, last: string): DaySlot[] {
  const byDate = new Map(daily.map((d) => [d.date, d]));
  const slots: DaySlot[] = [];
  for (let day = first; day <= last; day = addDays(day, 1)) {
    const d = byDate.get(day);
    slots.push({ date: day, cost_usd: d?.cost_usd ?? 0, total_tokens: d?.total_tokens ?? 0 });
  }
  return slots;
}

/**
 * The days to label on an axis of `days`, at most about `most`: evenly spaced, and always
 * the first and the last, so the labels show where the window starts and ends.
 */
export function dayTicks(days: string[], most: number): string[] {
  const n = days.length;
  if (n <= Math.max(2, most)) return days;
  const step = Math.ceil((n - 1) / (Math.max(2, most) - 1));
  const picked: number[] = [];
  for (let i = 0; i < n - 1; i += step) picked.push(i);
  // The last day is always labelled; a tick crowding it gives way.
  if (n - 1 - (picked.at(-1) as number) < step / 2 && picked.length > 1) picked.pop();
  picked.push(n - 1);
  return picked.map((i) => days[i] as string);
}

const short = new Intl.DateTimeFormat('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' });

/** A day as an axis label: `Nov 3`. */
export function dayLabel(day: string): string {
  return short.format(new Date(`${day}T00:00:00Z`));
}
