import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import type uPlot from 'uplot';
import { describe, expect, it, vi } from 'vitest';
import type { CostBucket, DailyPoint, Tokens } from '../api';
import { addDays, dayLabel, utcDay } from '../days';
import { json, mockFetch, renderWith } from '../test-utils';
import { TokensView, chartSpan, dayAfter, windowOf } from './Tokens';

// uPlot draws on a canvas jsdom lacks: the stand-in keeps what each chart was given.
const plots = vi.hoisted(() => [] as { opts: uPlot.Options; data: uPlot.AlignedData }[]);
vi.mock('uplot', () => ({
  default: class {
    static pxRatio = 1;
    static paths = {};
    constructor(opts: uPlot.Options, data: uPlot.AlignedData) {
      plots.push({ opts, data });
    }
    setSize() {}
    destroy() {}
  },
}));

const today = utcDay();
/** The query the view opens with: the last 30 days, today included. */
const last30 = `?since=${addDays(today, -29)}&until=${addDays(today, 1)}`;

const point = (date: string, cost_usd: number, total_tokens: number): DailyPoint => ({
  date,
  cost_usd,
  total_tokens,
  lead_time: { p50_seconds: null, p95_seconds: null, max_seconds: null, samples: 0 },
});

const bucket = (key: string, records: number): CostBucket => ({
  key,
  instrumented: true,
  metered: true,
  cost_usd: records * 0.5,
  input_tokens: records * 100,
  output_tokens: records * 10,
  total_tokens: records * 110,
  records,
});

const answer = (records: number, since: string | null, until: string | null): Tokens => ({
  window: { since, until },
  cost: {
    total: bucket('total', records),
    by_service: [bucket('aifactory', records)],
    by_model: [],
    by_provider: [],
    by_workitem: [],
    by_worker: [],
    by_billing_mode: [],
  },
  daily: [],
});

describe('Tokens window', () => {
  it('turns the last picked day into the exclusive end the server reads', () => {
    expect(dayAfter('2026-11-30')).toBe('2026-12-01');
    expect(dayAfter('2028-02-28')).toBe('2028-02-29');
    expect(windowOf('', '')).toEqual({ since: undefined, until: undefined });
    expect(windowOf('2026-11-01', '2026-11-30')).toEqual({ since: '2026-11-01', until: '2026-12-01' });
    expect(typeof windowOf('2026-11-02', '2026-11-01')).toBe('string');
  });

  it('asks the server for the picked days and shows what it answers', async () => {
    const asked: string[] = [];
    mockFetch({
      '/api/tokens': (url: URL) => {
        asked.push(url.search);
        const since = url.searchParams.get('since');
        const until = url.searchParams.get('until');
        return json(answer(since ? 3 : 7, since, until));
      },
    });
    renderWith(<TokensView />);
    expect(await screen.findByText('3')).toBeTruthy();
    expect(asked).toEqual([last30]);
    fireEvent.change(screen.getByLabelText('First day (UTC)'), { target: { value: '2026-11-01' } });
    fireEvent.change(screen.getByLabelText('Last day (UTC)'), { target: { value: '2026-11-30' } });
    await waitFor(() => expect(asked.at(-1)).toBe('?since=2026-11-01&until=2026-12-01'));
    expect(await screen.findByText('3')).toBeTruthy();

    fireEvent.click(screen.getByRole('button', { name: 'All time' }));
    await waitFor(() => expect(asked.at(-1)).toBe(''));
    expect(await screen.findByText('7')).toBeTruthy();
  });

  it('refuses a first day after the last without asking the server', async () => {
    const asked: string[] = [];
    mockFetch({
      '/api/tokens': (url: URL) => {
        asked.push(url.search);
        return json(answer(7, null, null));
      },
    });
    renderWith(<TokensView />);
    await screen.findByText('7');
    fireEvent.click(screen.getByRole('button', { name: 'All time' }));
    fireEvent.change(screen.getByLabelText('Last day (UTC)'), { target: { value: '2026-11-01' } });
    await waitFor(() => expect(asked.at(-1)).toBe('?until=2026-11-02'));
    const before = asked.length;
    fireEvent.change(screen.getByLabelText('First day (UTC)'), { target: { value: '2026-11-05' } });
    expect((await screen.findByRole('alert')).textContent).toContain('must not be after');
    expect(asked.length).toBe(before);
  });
});

describe('Tokens window choice', () => {
  it('opens on the last 30 days and offers 7 and 90 in one click', async () => {
    const asked: string[] = [];
    mockFetch({
      '/api/tokens': (url: URL) => {
        asked.push(url.search);
        return json(answer(1, null, null));
      },
    });
    renderWith(<TokensView />);
    await screen.findByText('Usage records');
    const presets = screen.getByRole('group', { name: 'Last days' });
    expect(within(presets).getByRole('button', { name: '30 days' }).getAttribute('aria-pressed')).toBe('true');
    expect((screen.getByLabelText('First day (UTC)') as HTMLInputElement).value).toBe(addDays(today, -29));
    expect((screen.getByLabelText('Last day (UTC)') as HTMLInputElement).value).toBe(today);

    fireEvent.click(within(presets).getByRole('button', { name: '7 days' }));
    await waitFor(() => expect(asked.at(-1)).toBe(`?since=${addDays(today, -6)}&until=${addDays(today, 1)}`));
    expect(within(presets).getByRole('button', { name: '7 days' }).getAttribute('aria-pressed')).toBe('true');
    expect(within(presets).getByRole('button', { name: '30 days' }).getAttribute('aria-pressed')).toBe('false');

    fireEvent.click(within(presets).getByRole('button', { name: '90 days' }));
    await waitFor(() => expect(asked.at(-1)).toBe(`?since=${addDays(today, -89)}&until=${addDays(today, 1)}`));
  });

  it('spans exactly a picked window, and an open end reaches today or the first day of data', () => {
    expect(chartSpan({ since: '2026-11-07', until: '2026-12-07' }, [point('2026-12-01', 1, 1)], '2026-12-06')).toEqual({ first: '2026-11-07', last: '2026-12-06' });
    // All time with one day of data: the default 30 days up to today, not the one day.
    expect(chartSpan({}, [point('2026-12-05', 1, 1)], '2026-12-06')).toEqual({ first: '2026-11-07', last: '2026-12-06' });
    // All time with older data: from its first day.
    expect(chartSpan({}, [point('2024-01-01', 1, 1), point('2026-12-05', 1, 1)], '2026-12-06')).toEqual({ first: '2024-01-01', last: '2026-12-06' });
    expect(chartSpan({ until: '2026-11-02' }, [], '2026-12-06')).toEqual({ first: '2026-10-03', last: '2026-11-01' });
  });

  it('draws one day of data as 30 day slots whose axis labels run from the first day to today', async () => {
    plots.length = 0;
    mockFetch({ '/api/tokens': { ...answer(2, null, null), daily: [point(today, 1.5, 900)] } });
    renderWith(<TokensView />);
    await waitFor(() => expect(plots.length).toBe(1));
    const { opts, data } = plots[0] as { opts: uPlot.Options; data: uPlot.AlignedData };
    const first = addDays(today, -29);
    const secs = (day: string) => Date.parse(`${day}T00:00:00Z`) / 1000;

    // One slot per day of the window; the days without usage are zero, not missing.
    expect(data[0]).toHaveLength(30);
    expect(data[0][0]).toBe(secs(first));
    expect(data[0][29]).toBe(secs(today));
    expect(data[1]).toEqual([...Array(29).fill(0), 1.5]);
    expect(data[2]).toEqual([...Array(29).fill(0), 900]);

    // The axis covers the window and nothing more: half a day either side of its ends.
    const u = { bbox: { width: 640 } } as uPlot;
    const x = opts.scales?.x?.range as uPlot.Range.Function;
    expect(x(u, secs(today), secs(today), 'x')).toEqual([secs(first) - 43_200, secs(today) + 43_200]);
    const axis = opts.axes?.[0] as uPlot.Axis;
    const splits = (axis.splits as (...a: unknown[]) => number[])(u, 0, 0, 0, 0, 0);
    const labels = (axis.values as (...a: unknown[]) => string[])(u, splits, 0, 0, 0);
    expect(labels[0]).toBe(dayLabel(first));
    expect(labels.at(-1)).toBe(dayLabel(today));
    expect(labels.length).toBeGreaterThan(2);
    expect(labels.length).toBeLessThanOrEqual(11);

    const caption = screen.getByText(/one per UTC day/);
    expect(caption.querySelector('[data-span]')?.textContent).toBe(`${first} to ${today} (30 days)`);
  });
});

describe('Tokens & cost: notional dollars', () => {
  it('shows notional dollars apart from metered spend and gives the tables a notional column', async () => {
    const total: CostBucket = { ...bucket('total', 4), cost_usd: 2, notional_cost_usd: 0.75 };
    const api: CostBucket = { ...bucket('api', 2), cost_usd: 2 };
    const subscription: CostBucket = { ...bucket('subscription', 1), metered: false, cost_usd: null, notional_cost_usd: 0.5 };
    const local: CostBucket = { ...bucket('local', 1), metered: false, cost_usd: null, notional_cost_usd: 0.25 };
    mockFetch({
      '/api/tokens': {
        ...answer(4, null, null),
        cost: { ...answer(4, null, null).cost, total, by_billing_mode: [api, subscription, local] },
      },
    });
    renderWith(<TokensView />);

    const spend = (await screen.findByText('Spend (metered)')).closest('.tile') as HTMLElement;
    // $2.00 is what was spent; the $0.75 is shown beside it, named, and never summed in.
    expect(within(spend).getByText('$2.00')).toBeTruthy();
    expect((spend.querySelector('[data-notional]') as HTMLElement).textContent).toBe('$0.75 notional, not spend');
    expect(spend.textContent).not.toContain('$2.75');

    const modes = screen.getByRole('table', { name: 'By billing mode' });
    expect(within(modes).getByRole('columnheader', { name: /Notional/ })).toBeTruthy();
    expect(within(modes).getAllByRole('rowheader').map((h) => h.textContent)).toEqual(['api', 'subscription', 'local']);
    // The service table has no notional dollars, so no such column.
    expect(within(screen.getByRole('table', { name: 'By service' })).queryByRole('columnheader', { name: /Notional/ })).toBeNull();
  });
});
