import { render, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { CostBucket } from '../api';
import { CostTable } from './CostTable';

const bucket = (key: string, b: Partial<CostBucket>): CostBucket => ({
  key,
  instrumented: true,
  metered: true,
  cost_usd: 0,
  input_tokens: 0,
  output_tokens: 0,
  total_tokens: 0,
  records: 1,
  ...b,
});

describe('CostTable', () => {
  const buckets = [
    bucket('api', { cost_usd: 4.3669, total_tokens: 807_300, input_tokens: 674_800, output_tokens: 132_500 }),
    bucket('subscription', { metered: false, cost_usd: null, total_tokens: 34_400 }),
    bucket('tfactory', { instrumented: false, metered: false, cost_usd: null, input_tokens: null, output_tokens: null, total_tokens: null, records: 0 }),
  ];

  it('shows dollars only for metered usage and says "not instrumented" for a silent service', () => {
    render(<CostTable caption="By billing mode" groupLabel="Mode" buckets={buckets} />);
    const row = (name: string) => screen.getByRole('rowheader', { name }).closest('tr') as HTMLElement;

    expect(within(row('api')).getByText('$4.37')).toBeTruthy();

    const unmetered = row('subscription');
    expect(unmetered.textContent).toContain('34.4K');
    expect(unmetered.textContent).toContain('not metered');
    expect(unmetered.textContent).not.toContain('$');

    const silent = row('tfactory');
    expect(silent.textContent).toContain('not instrumented');
    expect(silent.textContent).not.toContain('$');
    // No data is not zero: the token cells are blank, not "0".
    expect(silent.textContent).not.toMatch(/\b0\b/);
  });

  it('shows notional dollars in a column of their own, never as cost, and keeps local apart', () => {
    const modes = [
      bucket('api', { cost_usd: 1.25, total_tokens: 10_000 }),
      bucket('subscription', { metered: false, cost_usd: null, total_tokens: 34_400, notional_cost_usd: 0.3 }),
      bucket('local', { metered: false, cost_usd: null, total_tokens: 5_000, notional_cost_usd: 0.05 }),
    ];
    render(<CostTable caption="By billing mode" groupLabel="Mode" buckets={modes} />);
    expect(screen.getAllByRole('columnheader').map((h) => h.textContent)).toEqual(['Mode', 'Tokens', 'In / out', 'Cost', 'Notional dollars, not spend']);
    const row = (name: string) => screen.getByRole('rowheader', { name }).closest('tr') as HTMLElement;
    const cells = (name: string) => [...row(name).querySelectorAll('td')].map((td) => td.textContent);

    expect(cells('api')).toEqual(['10K', '0 / 0', '$1.25', '—']);
    expect(cells('subscription')).toEqual(['34.4K', '0 / 0', 'not metered', '$0.30']);
    // Local runs are their own bucket, not folded into subscription or api.
    expect(cells('local')).toEqual(['5,000', '0 / 0', 'not metered', '$0.05']);
    expect((row('local').querySelector('[data-notional]') as HTMLElement).className).toContain('muted');
  });

  it('has no notional column when no group reports notional dollars (or the server predates them)', () => {
    render(<CostTable caption="By service" groupLabel="Service" buckets={[bucket('aifactory', { cost_usd: 2, notional_cost_usd: 0 }), bucket('pfactory', { cost_usd: 1 })]} />);
    expect(screen.getAllByRole('columnheader')).toHaveLength(4);
    expect(document.querySelector('[data-notional]')).toBeNull();
  });

  it('summarises rows past the limit', () => {
    render(<CostTable caption="Top" groupLabel="Mode" buckets={buckets} limit={1} />);
    expect(screen.getAllByRole('rowheader')).toHaveLength(1);
    expect(screen.getByText('and 2 more')).toBeTruthy();
  });
});
