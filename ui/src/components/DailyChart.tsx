// The daily series of spend and tokens, drawn with uPlot (canvas, ~20 KB gzipped). This
// module is loaded on demand, so uPlot costs nothing until a chart is on screen.

import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { DailyPoint } from '../api';
import { money, tokens } from '../format';

const HEIGHT = 240;
const DAY = 86_400;

export default function DailyChart({ daily }: { daily: DailyPoint[] }) {
  const host = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const data: uPlot.AlignedData = [
      daily.map((d) => Date.parse(`${d.date}T00:00:00Z`) / 1000),
      daily.map((d) => d.cost_usd),
      daily.map((d) => d.total_tokens),
    ];
    const plot = new uPlot(
      {
        width: Math.max(320, el.clientWidth),
        height: HEIGHT,
        // One day alone would make uPlot stretch the axis over years: pad it to three days.
        scales: { x: { time: true, range: (_u, min, max) => (min === max ? [min - DAY, max + DAY] : [min, max]) }, usd: {}, tok: {} },
        axes: [
          { stroke: '#aab4c3', grid: { stroke: '#2a3342' } },
          { scale: 'usd', stroke: '#aab4c3', grid: { stroke: '#2a3342' }, values: (_u, v) => v.map((n) => money(n)) },
          { scale: 'tok', side: 1, stroke: '#aab4c3', grid: { show: false }, values: (_u, v) => v.map((n) => tokens(n)) },
        ],
        series: [
          { label: 'Day' },
          { label: 'Spend', scale: 'usd', stroke: '#60a5fa', width: 2, points: { size: 7 }, fill: 'rgba(96,165,250,0.12)', value: (_u, v) => (v === null ? '—' : money(v)) },
          { label: 'Tokens', scale: 'tok', stroke: '#c4b5fd', width: 2, dash: [6, 4], value: (_u, v) => (v === null ? '—' : tokens(v)) },
        ],
      },
      data,
      el,
    );
    const resize = () => plot.setSize({ width: Math.max(320, el.clientWidth), height: HEIGHT });
    const ro = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(resize);
    ro?.observe(el);
    return () => {
      ro?.disconnect();
      plot.destroy();
    };
  }, [daily]);

  return <div ref={host} className="chart" />;
}
