import { fireEvent, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../api';
import { mockFetch, renderWith } from '../test-utils';
import { Audit } from './Audit';

const entry = (id: number, overrides: Partial<AuditEntry> = {}): AuditEntry => ({
  id,
  seq: id,
  tenant: 'default',
  at: '2026-11-25T10:00:00Z',
  actor: 'local',
  kind: 'action.confirmed',
  correlation_key: '142',
  target: 'aifactory',
  method: 'POST',
  endpoint: '/api/tasks/x/apply-correction',
  status_code: 200,
  ok: true,
  action_id: `act_${id}`,
  payload_sha256: 'ab'.repeat(32),
  prev_hash: 'cd'.repeat(32),
  entry_hash: `${id}`.padStart(64, 'e'),
  ...overrides,
});

describe('Audit', () => {
  it('shows a tampered chain in red with the rows at fault', async () => {
    mockFetch({
      '/api/audit/chain': { verdict: 'tampered', rows: 4, findings: [{ id: 3, kind: 'altered' }, { id: 4, kind: 'broken_link' }] },
      '/api/audit': { entries: [entry(4), entry(3), entry(2, { kind: 'service.url_changed', correlation_key: null, action_id: null, method: 'PUT', endpoint: '/api/services/tfactory', status_code: null })], next_cursor: null },
    });
    renderWith(<Audit />);
    const findings = await screen.findByRole('list', { name: 'Findings' });
    expect(findings.closest('[data-verdict]')?.getAttribute('data-verdict')).toBe('tampered');
    expect(findings.closest('[data-verdict]')?.querySelector('.badge')?.className).toContain('tone-red');
    expect(within(findings).getAllByRole('listitem').map((li) => `${li.getAttribute('data-finding-id')}:${li.getAttribute('data-finding-kind')}`)).toEqual(['3:altered', '4:broken_link']);
    expect(findings.textContent).toContain('Row 3: altered');

    const table = await screen.findByRole('table');
    const flagged = [...table.querySelectorAll('tr[data-finding]')].map((r) => `${r.getAttribute('data-audit-id')}:${r.getAttribute('data-finding')}`);
    expect(flagged).toEqual(['4:broken_link', '3:altered']);
    expect(table.querySelector('tr[data-audit-id="2"]')?.textContent).toContain('PUT /api/services/tfactory');
    expect(screen.getByText(/3 entries shown, the whole log/)).toBeTruthy();
  });

  it('shows an intact chain in green and loads older entries by cursor', async () => {
    const cursors: (string | null)[] = [];
    mockFetch({
      '/api/audit/chain': { verdict: 'ok', rows: 3, findings: [] },
      '/api/audit': (url: URL) => {
        const cursor = url.searchParams.get('cursor');
        cursors.push(cursor);
        return new Response(JSON.stringify(cursor === '2' ? { entries: [entry(1)], next_cursor: null } : { entries: [entry(3), entry(2)], next_cursor: '2' }));
      },
    });
    renderWith(<Audit />);
    const verdict = (await screen.findByText(/All 3 rows match/)).closest('[data-verdict]') as HTMLElement;
    expect(verdict.getAttribute('data-verdict')).toBe('ok');
    expect(verdict.querySelector('.badge')?.className).toContain('tone-green');

    fireEvent.click(await screen.findByRole('button', { name: 'Load older entries' }));
    await screen.findByText(/3 entries shown, the whole log/);
    expect([...screen.getByRole('table').querySelectorAll('tbody tr')].map((r) => r.getAttribute('data-action-id'))).toEqual(['act_3', 'act_2', 'act_1']);
    expect(cursors).toEqual([null, '2']);
    expect(screen.queryByRole('button', { name: 'Load older entries' })).toBeNull();
  });
});
