import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { NeedsYouItem } from '../api';
import { json, mockFetch, preparedAction, renderWith } from '../test-utils';
import { NeedsYou, answersFor } from './NeedsYou';

// Reasons worded as the server words them (crates/domain/src/insights/needs.rs).
const APPROVAL = 'plan: plan awaiting approval';
const STUCK = 'code: stuck (failed_hard, silent 3h 2m)';
const HUMAN_REVIEW = 'test: a person must review (no_evidence: no test ran)';
const UNPROVEN = 'code: reported done without evidence (unproven)';

const items: NeedsYouItem[] = [
  { correlation_key: '185', title: 'Dark mode', reasons: [APPROVAL] },
  { correlation_key: '190', title: 'Login retries', reasons: [STUCK, UNPROVEN] },
  { correlation_key: '191', title: 'Export CSV', reasons: [HUMAN_REVIEW] },
  { correlation_key: '192', title: 'Old docs', reasons: [UNPROVEN] },
];

const row = (key: string) => document.querySelector(`li[data-key="${key}"]`) as HTMLElement;

describe('Needs you: the fitting proposal per reason', () => {
  it('maps each reason to the action that answers it, and the rest to nothing', () => {
    expect(answersFor([APPROVAL]).map((a) => a.kind)).toEqual(['approve_gate']);
    expect(answersFor(['test: in review (awaiting_approval)']).map((a) => a.kind)).toEqual(['approve_gate']);
    expect(answersFor([STUCK]).map((a) => a.kind)).toEqual(['recover']);
    expect(answersFor(['code: stalled (in_progress, silent 2h 0m)']).map((a) => a.kind)).toEqual(['recover']);
    expect(answersFor([HUMAN_REVIEW]).map((a) => a.kind)).toEqual(['kick_handback']);
    // Recover resets an AIFactory task: a stalled plan or test is not its to fix.
    expect(answersFor(['plan: stalled (running, silent 2h 0m)', 'test: stuck (halted, silent 1h 0m)'])).toEqual([]);
    expect(answersFor([UNPROVEN, 'code: injection scan flagged (prompt override)', 'code: in review (ai_review)'])).toEqual([]);
    // Most urgent reason first, each kind once.
    expect(answersFor([STUCK, APPROVAL, 'code: stalled (in_progress, silent 2h 0m)']).map((a) => a.kind)).toEqual(['recover', 'approve_gate']);
  });

  it('offers approve on a plan awaiting approval and proposes it with the kind and key, sending nothing else', async () => {
    const bodies: unknown[] = [];
    const fetch = mockFetch({
      '/api/needs-you': { count: items.length, items, unreadable: 0 },
      'POST /api/actions/propose': (_u: URL, init?: RequestInit) => {
        bodies.push(JSON.parse(String(init?.body)));
        return json(preparedAction({ id: 'act_185', kind: 'approve_gate', correlation_key: '185' }), 201);
      },
    });
    renderWith(<NeedsYou />);
    await screen.findByRole('list', { name: 'Work items waiting on a person' });

    const approve = within(row('185')).getByRole('button', { name: 'Propose: approve the plan' });
    expect(approve.getAttribute('aria-describedby')).toBeTruthy();
    expect(document.getElementById(approve.getAttribute('aria-describedby') as string)?.textContent).toBe('#185 Dark mode');
    expect(within(row('190')).getByRole('button', { name: 'Propose: recover the task' })).toBeTruthy();
    expect(within(row('191')).getByRole('button', { name: 'Propose: kick a handback' })).toBeTruthy();
    expect(within(row('192')).queryAllByRole('button', { name: /^Propose/ })).toEqual([]);

    fireEvent.click(approve);
    const card = await within(row('185')).findByRole('article', { name: /Approve gate #185/ });
    expect(bodies).toEqual([{ kind: 'approve_gate', correlation_key: '185' }]);
    // Prepared, not sent: the card waits for a person to confirm.
    expect(card.getAttribute('data-status')).toBe('prepared');
    expect(within(card).getByRole('button', { name: 'Confirm' })).toBeTruthy();
    expect(within(row('185')).queryByRole('button', { name: 'Propose: approve the plan' })).toBeNull();
    expect(fetch.mock.calls.filter(([, init]) => init?.method === 'POST')).toHaveLength(1);
  });

  it('keeps the row and its outcome once the confirmed item leaves the list, offering it no more', async () => {
    let listed = items;
    mockFetch({
      '/api/needs-you': () => json({ count: listed.length, items: listed, unreadable: 0 }),
      'POST /api/actions/propose': () => json(preparedAction({ id: 'act_185', kind: 'approve_gate', correlation_key: '185' }), 201),
      'POST /api/actions/act_185/confirm': () => {
        listed = items.filter((n) => n.correlation_key !== '185');
        return json({ action: preparedAction({ id: 'act_185', kind: 'approve_gate', correlation_key: '185', status: 'executed' }) });
      },
    });
    renderWith(<NeedsYou />);
    await screen.findByRole('list', { name: 'Work items waiting on a person' });
    fireEvent.click(within(row('185')).getByRole('button', { name: 'Propose: approve the plan' }));
    fireEvent.click(await within(row('185')).findByRole('button', { name: 'Confirm' }));
    await waitFor(() => expect(screen.getByText('3 waiting')).toBeTruthy());
    expect(within(row('185')).getByRole('article', { name: /Approve gate #185/ }).getAttribute('data-status')).toBe('executed');
    expect(within(row('185')).queryByRole('button', { name: /^Propose/ })).toBeNull();
  });

  it('says why a proposal was refused, and offers nothing without the write scope', async () => {
    mockFetch({
      '/api/needs-you': { count: items.length, items, unreadable: 0 },
      'POST /api/actions/propose': () => json({ title: 'Conflict', status: 409, detail: 'AIFactory task `t-9` is running' }, 409),
    });
    const { unmount } = renderWith(<NeedsYou />);
    await screen.findByRole('list', { name: 'Work items waiting on a person' });
    fireEvent.click(within(row('190')).getByRole('button', { name: 'Propose: recover the task' }));
    expect((await within(row('190')).findByRole('alert')).textContent).toBe('Not proposed: AIFactory task `t-9` is running');
    unmount();

    renderWith(<NeedsYou />, { session: { tenant: 't', scopes: ['read'], open_mode: false } });
    await screen.findByRole('list', { name: 'Work items waiting on a person' });
    expect(screen.queryAllByRole('button', { name: /^Propose/ })).toEqual([]);
  });
});
