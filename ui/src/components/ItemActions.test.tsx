import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { json, mockFetch, preparedAction, renderWith, stage, workItem } from '../test-utils';
import { Drawer } from './Drawer';

const item = workItem('185', { plan: stage({ status: 'awaiting_approval', status_class: 'review', task_id: '011-dark' }) }, { title: 'Dark mode' });

const past = preparedAction({
  id: 'act_old',
  kind: 'recover',
  status: 'failed',
  target_service: 'aifactory',
  endpoint: '/api/tasks/proj%3A012/resume',
  results: [{ method: 'POST', endpoint: '/api/tasks/proj%3A012/resume', status_code: 409, ok: false, response: null, error: 'task is not paused', duration_ms: 4 }],
});

describe('drawer actions', () => {
  it('offers only the available kinds, proposes with the note, and shows the card and the history', async () => {
    let proposed: unknown = null;
    const fetch = mockFetch({
      '/api/workitems/185': item,
      'GET /api/workitems/185/actions': { available: ['approve_gate', 'reject_review'], actions: [past] },
      'POST /api/actions/propose': (_u: URL, init?: RequestInit) => {
        proposed = JSON.parse(String(init?.body));
        return json(preparedAction({ id: 'act_new', note: 'ship it' }), 201);
      },
    });
    renderWith(<Drawer taskKey="185" />);

    const group = await screen.findByRole('group', { name: 'Propose an action' });
    const buttons = within(group).getAllByRole('button');
    expect(buttons.map((b) => b.textContent)).toEqual(['Propose: Approve gate', 'Propose: Reject review']);

    const history = screen.getByRole('table', { name: 'Earlier actions, newest first' });
    const row = history.querySelector('tr[data-action-id="act_old"]') as HTMLElement;
    expect(row.querySelector('[data-action-status]')?.textContent).toBe('failed');
    expect(row.textContent).toContain('task is not paused');

    fireEvent.change(screen.getByLabelText('Note for the proposal (optional)'), { target: { value: ' ship it ' } });
    fireEvent.click(within(group).getByRole('button', { name: 'Propose: Approve gate' }));
    const card = await screen.findByRole('article', { name: /Approve gate #185/ });
    expect(proposed).toEqual({ kind: 'approve_gate', correlation_key: '185', note: 'ship it' });
    expect(card.getAttribute('data-action-id')).toBe('act_new');
    expect(within(card).getByRole('button', { name: 'Confirm' })).toBeTruthy();
    // Proposing sent nothing upstream: no confirm went out.
    expect(fetch.mock.calls.some(([u]) => String(u).includes('/confirm'))).toBe(false);
  });

  it('shows a refused proposal with its reason', async () => {
    mockFetch({
      '/api/workitems/185': item,
      'GET /api/workitems/185/actions': { available: ['approve_gate'], actions: [] },
      'POST /api/actions/propose': () => json({ title: 'Conflict', status: 409, detail: 'the plan has not passed its review gates' }, 409),
    });
    renderWith(<Drawer taskKey="185" />);
    fireEvent.click(await screen.findByRole('button', { name: 'Propose: Approve gate' }));
    expect((await screen.findByRole('alert')).textContent).toBe('Approve gate was refused: the plan has not passed its review gates');
  });

  it('hides every action button without the write scope, but lists pending proposals', async () => {
    mockFetch({
      '/api/workitems/185': item,
      'GET /api/workitems/185/actions': { available: ['approve_gate'], actions: [preparedAction({ id: 'act_p' })] },
    });
    renderWith(<Drawer taskKey="185" />, { session: { tenant: 't', scopes: ['read'], open_mode: false } });
    await screen.findByText('Proposing and confirming actions needs the write scope.');
    expect(screen.queryByRole('button', { name: /Propose/ })).toBeNull();
    const card = screen.getByRole('article', { name: /Approve gate #185/ });
    expect(within(card).queryByRole('button', { name: 'Confirm' })).toBeNull();
    await waitFor(() => expect(screen.queryByRole('group', { name: 'Propose an action' })).toBeNull());
  });
});
