import { fireEvent, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { mockFetch, renderWith, stage, workItem } from '../test-utils';
import { Drawer } from './Drawer';

const item = workItem(
  '185',
  {
    plan: stage({ status: 'emitted', status_class: 'done', proof: 'proven', task_id: '011-dark' }),
    code: stage({ status: 'done', status_class: 'done', proof: 'unproven', task_id: 'proj:012', injection_scan: { verdict: 'flagged', reason: 'asks for secrets' }, usage: { input_tokens: 90, output_tokens: 10, total_tokens: 100, cost_usd: 0 } }),
  },
  {
    title: 'Dark mode for the dashboard',
    aliases: ['pf-011-dark'],
    links: { session_id: '011-dark', issue_number: 185, aifactory_task_ids: ['proj:012'], branch: 'af/185-dark', pr_number: 318, tfactory_spec_ids: ['spec-009'] },
    event_count: 3,
  },
);

const graph = {
  available: true,
  service: 'aifactory',
  stage: 'code',
  task_id: 'proj:012',
  nodes: [
    { id: 's1', label: 'Schema', status: 'completed', started_at: null, finished_at: null, deps: [] },
    { id: 's2', label: 'API', status: 'in_progress', started_at: null, finished_at: null, deps: ['s1'] },
    { id: 's3', label: 'UI', status: 'failed', started_at: null, finished_at: null, deps: ['s1', 's2'] },
  ],
};

const timeline = {
  correlation_key: '185',
  event_count: 2,
  span_seconds: 300,
  next_cursor: null,
  events: [
    { seq: 1, id: 'e1', service: 'pfactory', task_id: '011-dark', status: 'emitted', time: '2026-11-01T10:00:00Z', received_at: '2026-11-01T10:00:00Z' },
    { seq: 2, id: 'e2', service: 'aifactory', task_id: 'proj:012', status: 'done', time: '2026-11-01T10:05:00Z', received_at: '2026-11-01T10:05:00Z' },
  ],
};

describe('work-item drawer', () => {
  it('shows the chain, stages, aliases, graph and timeline', async () => {
    window.history.replaceState(null, '', '/pipeline?task=185');
    mockFetch({ '/api/workitems/185': item, '/api/workitems/185/timeline': timeline, '/api/workitems/185/process': graph });
    renderWith(<Drawer taskKey="185" />);

    const dialog = await screen.findByRole('dialog', { name: /#185 Dark mode for the dashboard/ });
    const chain = within(dialog).getByRole('list', { name: 'Chain from plan to test' });
    expect(within(chain).getAllByRole('listitem').map((li) => li.textContent)).toEqual([
      'Plan session011-dark',
      'Issue#185',
      'Coding taskproj:012',
      'Branch / PRaf/185-dark · PR #318',
      'Test specspec-009',
    ]);

    const code = dialog.querySelector('tr[data-stage="code"]') as HTMLElement;
    expect(code.querySelector('[data-tone]')?.getAttribute('data-tone')).toBe('amber');
    expect(code.textContent).toContain('flagged: asks for secrets');
    // Tokens without a metered cost: no dollar figure.
    expect(code.textContent).toContain('100 tokens');
    expect(code.textContent).not.toContain('$');
    expect(within(dialog).getByText('pf-011-dark')).toBeTruthy();

    await screen.findByRole('group', { name: /Execution graph of Code/ });
    const tones = [...dialog.querySelectorAll('[data-node]')].map((n) => `${n.getAttribute('data-node')}:${n.getAttribute('data-tone')}`);
    expect(tones).toEqual(['s1:green', 's2:blue', 's3:red']);
    expect([...dialog.querySelectorAll('[data-edge]')].map((e) => e.getAttribute('data-edge'))).toEqual(['s1->s2', 's1->s3', 's2->s3']);

    const events = await screen.findByRole('list', { name: 'Timeline, oldest first' });
    expect(within(events).getAllByRole('listitem')).toHaveLength(2);
    expect(events.textContent).toContain('PFactoryemitted');
  });

  it('closes on Escape, leaving the view', async () => {
    window.history.replaceState(null, '', '/pipeline?status=failed&task=185');
    mockFetch({ '/api/workitems/185': item });
    renderWith(<Drawer taskKey="185" />);
    const dialog = await screen.findByRole('dialog');
    expect(document.activeElement?.textContent).toBe('Close');
    fireEvent.keyDown(dialog, { key: 'Escape' });
    expect(window.location.pathname + window.location.search).toBe('/pipeline?status=failed');
  });

  it('says so when the graph is unavailable', async () => {
    mockFetch({ '/api/workitems/185': item, '/api/workitems/185/process': { available: false, reason: 'aifactory is not configured' } });
    renderWith(<Drawer taskKey="185" />);
    expect(await screen.findByText('No graph: aifactory is not configured')).toBeTruthy();
  });
});
