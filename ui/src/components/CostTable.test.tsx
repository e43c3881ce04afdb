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

  it('summarises rows past the limit', () => {
    render(<CostTable caption="Top" groupLabel="Mode" buckets={buckets} limit={1} />);
    expect(screen.getAllByRole('rowheader')).toHaveLength(1);
    expect(screen.getByText('and 2 more')).toBeTruthy();
  });
});
