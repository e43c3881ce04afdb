import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { CostBucket, Tokens } from '../api';
import { json, mockFetch, renderWith } from '../test-utils';
import { TokensView, dayAfter, windowOf } from './Tokens';

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
    expect(await screen.findByText('7')).toBeTruthy();
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
    fireEvent.change(screen.getByLabelText('Last day (UTC)'), { target: { value: '2026-11-01' } });
    await waitFor(() => expect(asked.at(-1)).toBe('?until=2026-11-02'));
    const before = asked.length;
    fireEvent.change(screen.getByLabelText('First day (UTC)'), { target: { value: '2026-11-05' } });
    expect((await screen.findByRole('alert')).textContent).toContain('must not be after');
    expect(asked.length).toBe(before);
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
