import { render, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { Anomaly } from '../api';
import { anomalyLabel } from '../format';
import { AnomalyList, budgetFigures } from './AnomalyList';

const anomaly = (a: Partial<Anomaly>): Anomaly => ({
  kind: 'failure',
  severity: 'warning',
  correlation_key: '185',
  title: 'Item 185',
  detail: '',
  evidence: {},
  ...a,
});

describe('AnomalyList', () => {
  it('labels budget_exceeded with its figures, a repository conflict in the server words, and unknown kinds readably', () => {
    render(
      <AnomalyList
        anomalies={[
          anomaly({ kind: 'queue_depth_rising', severity: 'info', correlation_key: '12', title: 'Deep queue', detail: 'queue grew fourfold' }),
          anomaly({
            kind: 'budget_exceeded',
            severity: 'high',
            correlation_key: 'acme/shop#7150',
            title: 'Cart checkout totals',
            detail: 'metered spend passed the work item budget',
            evidence: { limit_usd: 10, spent_usd: 12.4 },
          }),
          anomaly({
            kind: 'correlation_conflict',
            correlation_key: '7150',
            title: 'Issue 7150',
            detail: 'issue #7150 matches more than one repository (acme/shop, acme/api); events left unmerged',
          }),
        ]}
      />,
    );
    const rows = within(screen.getByRole('list', { name: 'Anomalies' })).getAllByRole('listitem');
    expect(rows.map((r) => r.textContent)).toEqual([
      'highacme/shop#7150 Cart checkout totalsbudget exceeded: metered spend passed the work item budget (spent $12.40 of a $10.00 limit)',
      'warning#7150 Issue 7150correlation conflict: issue #7150 matches more than one repository (acme/shop, acme/api); events left unmerged',
      'info#12 Deep queuequeue depth rising: queue grew fourfold',
    ]);
  });

  it('does not repeat figures the detail already gives, and lists a finding without a work item unlinked', () => {
    const a = anomaly({ kind: 'budget_exceeded', correlation_key: '', title: 'Tenant budget', detail: 'spent $12.40 of the $10.00 budget', evidence: { limit_usd: 10, spent_usd: 12.4 } });
    expect(budgetFigures(a)).toBeNull();
    expect(budgetFigures(anomaly({ kind: 'budget_exceeded', evidence: 'n/a' }))).toBeNull();
    render(<AnomalyList anomalies={[a]} />);
    expect(screen.queryByRole('button')).toBeNull();
    expect(screen.getByText(/Tenant budget/)).toBeTruthy();
  });

  it('makes any kind readable', () => {
    expect(anomalyLabel('budget_exceeded')).toBe('budget exceeded');
    expect(anomalyLabel('injection_skipped')).toBe('injection scan skipped');
    expect(anomalyLabel('tfactory.verification-gap')).toBe('tfactory verification gap');
    expect(anomalyLabel('')).toBe('anomaly');
  });
});
