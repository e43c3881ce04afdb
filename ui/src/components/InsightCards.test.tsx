import { fireEvent, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { InsightCard } from '../api';
import { json, mockFetch, preparedAction, renderWith } from '../test-utils';
import { MissionControl } from '../views/MissionControl';
import { InsightCards } from './InsightCards';

const cards: InsightCard[] = [
  { id: 'i-info', kind: 'cost_drift', severity: 'info', title: 'Spend is drifting up', detail: 'daily spend 30% over baseline', correlation_key: null, suggested: null },
  {
    id: 'i-loop',
    kind: 'handback_loop',
    severity: 'high',
    title: '#142 keeps failing its tests',
    detail: '3 handbacks; verdicts failing: test_login',
    correlation_key: '142',
    suggested: { kind: 'kick_handback', correlation_key: '142', label: 'Send a correction' },
  },
];

describe('insight cards', () => {
  it('proposes the suggested action and shows the proposal, confirming nothing', async () => {
    let body: unknown = null;
    const fetch = mockFetch({
      'POST /api/actions/propose': (_u: URL, init?: RequestInit) => {
        body = JSON.parse(String(init?.body));
        return json(preparedAction({ id: 'act_s', kind: 'kick_handback', correlation_key: '142', target_service: 'aifactory', endpoint: '/api/tasks/t/apply-correction' }), 201);
      },
    });
    renderWith(<InsightCards cards={cards} />);
    const list = screen.getByRole('list', { name: 'Insights' });
    const items = within(list).getAllByRole('listitem');
    expect(items.map((i) => i.getAttribute('data-insight'))).toEqual(['i-loop', 'i-info']);
    expect(within(items[1] as HTMLElement).queryByRole('button', { name: /Send/ })).toBeNull();

    fireEvent.click(within(items[0] as HTMLElement).getByRole('button', { name: 'Send a correction' }));
    const card = await screen.findByRole('article', { name: /Kick handback #142/ });
    expect(body).toEqual({ kind: 'kick_handback', correlation_key: '142' });
    expect(card.querySelector('.request')?.textContent).toBe('POST /api/tasks/t/apply-correction');
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(screen.queryByRole('button', { name: 'Send a correction' })).toBeNull();
  });

  it('shows a refused suggestion, and no buttons without the write scope', async () => {
    mockFetch({ 'POST /api/actions/propose': () => json({ title: 'Conflict', status: 409, detail: 'no failing verdicts and no note' }, 409) });
    const { unmount } = renderWith(<InsightCards cards={cards} />);
    fireEvent.click(screen.getByRole('button', { name: 'Send a correction' }));
    expect((await screen.findByRole('alert')).textContent).toBe('Not proposed: no failing verdicts and no note');
    unmount();
    renderWith(<InsightCards cards={cards} />, { session: { tenant: 't', scopes: ['read'], open_mode: false } });
    expect(screen.queryByRole('button', { name: 'Send a correction' })).toBeNull();
  });

  it('appear on Mission Control from /api/insights', async () => {
    mockFetch({ '/api/insights': { cards } });
    renderWith(<MissionControl />);
    const list = await screen.findByRole('list', { name: 'Insights' });
    expect(list.textContent).toContain('#142 keeps failing its tests');
  });
});
