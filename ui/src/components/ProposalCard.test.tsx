import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { deferred, json, mockFetch, preparedAction, renderWith } from '../test-utils';
import { ProposalCard } from './ProposalCard';

const handback = preparedAction({
  id: 'act_7',
  kind: 'kick_handback',
  correlation_key: '142',
  target_service: 'aifactory',
  method: 'POST',
  endpoint: '/api/tasks/proj%3A012/apply-correction',
  payload: { fix_request_md: '## Failing\n- test_login', confirm: true },
  follow_ups: [{ method: 'POST', endpoint: '/api/tasks/proj%3A012/run', payload: null }],
  rationale: 'Two verdicts failed; the coding task gets a correction.',
  note: 'Login is broken',
});

const executed = {
  ...handback,
  status: 'executed' as const,
  results: [
    { method: 'POST' as const, endpoint: '/api/tasks/proj%3A012/apply-correction', status_code: 200, ok: true, response: { success: true }, duration_ms: 12 },
    { method: 'POST' as const, endpoint: '/api/tasks/proj%3A012/run', status_code: 202, ok: true, response: null, duration_ms: 7 },
  ],
};

describe('proposal card', () => {
  it('shows the exact requests, sends nothing by itself, and confirms once on click', async () => {
    const answer = deferred<Response>();
    const fetch = mockFetch({ 'POST /api/actions/act_7/confirm': () => answer.promise });
    renderWith(<ProposalCard action={handback} />);

    const card = screen.getByRole('article', { name: /Kick handback #142/ });
    const requests = within(card).getAllByRole('listitem');
    expect(requests).toHaveLength(2);
    expect(requests[0]?.querySelector('.request')?.textContent).toBe('POST /api/tasks/proj%3A012/apply-correction');
    expect(within(card).getByRole('group', { name: 'Body of step 1' }).textContent).toBe(JSON.stringify(handback.payload, null, 2));
    expect(requests[1]?.querySelector('.request')?.textContent).toBe('POST /api/tasks/proj%3A012/run');
    expect(requests[1]?.textContent).toContain('No body.');
    expect(card.querySelector('[data-target]')?.textContent).toBe('AIFactory');
    expect(card.textContent).toContain('Two verdicts failed');
    expect(card.textContent).toContain('Login is broken');
    expect(card.querySelector('[data-expiry]')?.textContent).toMatch(/Expires in (9:5\d|10:00)/);
    // Rendering a proposal never sends anything.
    expect(fetch).not.toHaveBeenCalled();

    const confirm = within(card).getByRole('button', { name: 'Confirm' });
    fireEvent.click(confirm);
    await waitFor(() => expect(within(card).getByRole('button', { name: 'Confirming…' })).toHaveProperty('disabled', true));
    fireEvent.click(within(card).getByRole('button', { name: 'Confirming…' }));
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(fetch.mock.calls[0]?.[1]?.method).toBe('POST');
    expect(String(fetch.mock.calls[0]?.[0])).toBe('/api/actions/act_7/confirm');

    answer.resolve(json({ action: executed }));
    const outcome = await within(card).findByRole('status', { name: 'Outcome: executed' });
    const results = within(outcome).getAllByRole('listitem');
    expect(results.map((r) => r.querySelector('.status-code')?.textContent)).toEqual(['HTTP 200', 'HTTP 202']);
    expect(card.getAttribute('data-status')).toBe('executed');
    expect(within(card).queryByRole('button', { name: 'Confirm' })).toBeNull();
    // The buttons are gone: keyboard focus lands on the outcome, not on the page.
    await waitFor(() => expect(document.activeElement).toBe(card.querySelector('.outcome')));
  });

  it('shows a failed step with the upstream reason', async () => {
    mockFetch({
      'POST /api/actions/act_7/confirm': {
        action: {
          ...handback,
          status: 'failed',
          results: [{ method: 'POST', endpoint: '/api/tasks/proj%3A012/apply-correction', status_code: 409, ok: false, response: { success: false, error: 'task is running' }, error: 'task is running', duration_ms: 5 }],
        },
      },
    });
    renderWith(<ProposalCard action={handback} />);
    fireEvent.click(screen.getByRole('button', { name: 'Confirm' }));
    const outcome = await screen.findByRole('status', { name: 'Outcome: failed' });
    expect(outcome.textContent).toContain('HTTP 409');
    expect(outcome.textContent).toContain('task is running');
    expect(outcome.querySelector('[data-ok="false"]')).not.toBeNull();
  });

  it('shows the reason when the server refuses the confirm', async () => {
    mockFetch({
      'POST /api/actions/act_7/confirm': () => json({ title: 'Conflict', status: 409, detail: 'action act_7 is already executed' }, 409),
    });
    renderWith(<ProposalCard action={handback} />);
    fireEvent.click(screen.getByRole('button', { name: 'Confirm' }));
    expect((await screen.findByRole('alert')).textContent).toBe('Refused: action act_7 is already executed');
    expect(screen.getByRole('article').getAttribute('data-status')).toBe('prepared');
  });

  it('rejects', async () => {
    const fetch = mockFetch({ 'POST /api/actions/act_7/reject': { action: { ...handback, status: 'rejected' } } });
    renderWith(<ProposalCard action={handback} />);
    fireEvent.click(screen.getByRole('button', { name: 'Reject' }));
    expect(await screen.findByText('Rejected: nothing was sent.')).toBeTruthy();
    expect(String(fetch.mock.calls[0]?.[0])).toBe('/api/actions/act_7/reject');
    expect(screen.queryByRole('button', { name: 'Confirm' })).toBeNull();
  });

  it('cannot be confirmed once expired, or without the approve scope', () => {
    const { unmount } = renderWith(<ProposalCard action={{ ...handback, expires_at: new Date(Date.now() - 1000).toISOString() }} />);
    expect(screen.getByRole('button', { name: 'Confirm' })).toHaveProperty('disabled', true);
    expect(screen.getByText(/Expired: propose it again/)).toBeTruthy();
    unmount();

    renderWith(<ProposalCard action={handback} />, { session: { tenant: 't', scopes: ['read'], open_mode: false } });
    expect(screen.queryByRole('button', { name: 'Confirm' })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Reject' })).toBeNull();
    expect(screen.getByText('Confirming needs the approve scope.')).toBeTruthy();
  });

  it('lets a proposer reject but only an approver confirm', () => {
    const { unmount } = renderWith(<ProposalCard action={handback} />, { session: { tenant: 't', scopes: ['read', 'write'], open_mode: false } });
    expect(screen.queryByRole('button', { name: 'Confirm' })).toBeNull();
    expect(screen.getByRole('button', { name: 'Reject' })).toBeTruthy();
    expect(screen.getByText('Confirming needs the approve scope.')).toBeTruthy();
    unmount();

    renderWith(<ProposalCard action={handback} />, { session: { tenant: 't', scopes: ['read', 'approve'], open_mode: false } });
    expect(screen.getByRole('button', { name: 'Confirm' })).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Reject' })).toBeNull();
  });

  it('names who proposed and who decided, and through which door', () => {
    renderWith(
      <ProposalCard
        action={{ ...handback, status: 'rejected', proposed_by: 'key:k_agent', proposed_via: 'mcp', decided_by: 'key:k_lead', decided_via: 'ui' }}
      />,
    );
    expect(screen.getByText(/key:k_agent/).textContent).toContain('over MCP');
    const decided = document.querySelector('[data-decided-by]')!;
    expect(decided.textContent).toBe('Rejected by key:k_lead (in the cockpit)');
  });
});
