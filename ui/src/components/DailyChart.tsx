// The daily series of spend and tokens over a window, drawn with uPlot (canvas, ~20 KB
// gzipped): one bar of spend per UTC day of the window, tokens as a line over the same
// days. The axis spans exactly the window's days, whatever days have data. This module is
// loaded on demand, so uPlot costs nothing until a chart is on screen.

import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { dayLabel, daySeconds, dayTicks, utcDay, type DaySlot } from '../days';
import { money, tokens } from '../format';

const HEIGHT = 240;
const DAY = 86_400;
/** Room one axis label needs, in CSS pixels. */
const LABEL_WIDTH = 64;

/** From zero to a little over the largest value, so a day at zero sits on the axis. */
const fromZero: uPlot.Range.Function = (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1];

/** The chart's options for `days` (one slot per day of the window, oldest first). */
export function chartOptions(days: DaySlot[], width: number): uPlot.Options {
  const dates = days.map((d) => d.date);
  const first = daySeconds(dates[0] as string);
  const last = daySeconds(dates.at(-1) as string);
  return {
    width,
    height: HEIGHT,
    scales: {
      // Half a day either side, so the first and last day's bars are whole.
      x: { time: true, range: () => [first - DAY / 2, last + DAY / 2] },
      usd: { range: fromZero },
      tok: { range: fromZero },
    },
    axes: [
      {
        stroke: '#aab4c3',
        grid: { stroke: '#2a3342' },
        splits: (u) => dayTicks(dates, Math.floor(u.bbox.width / uPlot.pxRatio / LABEL_WIDTH)).map(daySeconds),
        values: (_u, splits) => splits.map((s) => dayLabel(utcDay(new Date(s * 1000)))),
      },
      { scale: 'usd', stroke: '#aab4c3', grid: { stroke: '#2a3342' }, values: (_u, v) => v.map((n) => money(n)) },
      { scale: 'tok', side: 1, stroke: '#aab4c3', grid: { show: false }, values: (_u, v) => v.map((n) => tokens(n)) },
    ],
    series: [
      { label: 'Day', value: (_u, v) => (v === null ? '—' : utcDay(new Date(v * 1000))) },
      {
        label: 'Spend',
        scale: 'usd',
        stroke: '#60a5fa',
        fill: 'rgba(96,165,250,0.45)',
        paths: uPlot.paths.bars?.({ size: [0.7, 40], align: 0 }),
        points: { show: false },
        value: (_u, v) => (v === null ? '—' : money(v)),
      },
      { label: 'Tokens', scale: 'tok', stroke: '#c4b5fd', width: 2, dash: [6, 4], points: { size: 5 }, value: (_u, v) => (v === null ? '—' : tokens(v)) },
    ],
  };
}

export default function DailyChart({ days }: { days: DaySlot[] }) {
  const host = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = host.current;
    if (!el || days.length === 0) return;
    const data: uPlot.AlignedData = [days.map((d) => daySeconds(d.date)), days.map((d) => d.cost_usd), days.map((d) => d.total_tokens)];
    const plot = new uPlot(chartOptions(days, Math.max(320, el.clientWidth)), data, el);
    const resize = () => plot.setSize({ width: Math.max(320, el.clientWidth), height: HEIGHT });
    const ro = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(resize);
    ro?.observe(el);
    return () => {
      ro?.disconnect();
      plot.destroy();
    };
  }, [days]);

  return <div ref={host} className="chart" data-days={days.length} />;
}
