import { act, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { StageName, WorkItem } from '../api';
import { mockFetch, renderWith, stage, workItem } from '../test-utils';
import { Pipeline } from './Pipeline';

const STAGE_OF: StageName[] = ['plan', 'code', 'test'];

/** 2,000 items spread over the three columns; every tenth failed, every seventh on branch "feat/x". */
function items(): WorkItem[] {
  return Array.from({ length: 2000 }, (_, i) => {
    const col = STAGE_OF[i % 3] as StageName;
    const failed = i % 10 === 0;
    return workItem(
      String(1000 + i),
      { [col]: stage({ status: failed ? 'failed' : 'in_progress', status_class: failed ? 'failed' : 'running' }) },
      { updated_at: new Date(Date.UTC(2026, 10, 1, 0, 0, i)).toISOString(), links: { session_id: null, issue_number: 1000 + i, aifactory_task_ids: [], branch: i % 7 === 0 ? 'feat/x' : null, pr_number: null, tfactory_spec_ids: [], repo: null, emitted_issues: [] } },
    );
  });
}

function servePages(all: WorkItem[]) {
  return mockFetch({
    '/api/workitems': (url: URL) => {
      const from = Number(url.searchParams.get('cursor') ?? 0);
      const limit = Number(url.searchParams.get('limit'));
      const next = from + limit < all.length ? String(from + limit) : null;
      return new Response(JSON.stringify({ count: all.length, items: all.slice(from, from + limit), next_cursor: next, stalled_count: 0 }));
    },
  });
}

describe('Pipeline board', () => {
  it('pages in 2,000 items and renders only a window of each column', async () => {
    const fetch = servePages(items());
    renderWith(<Pipeline />);
    await waitFor(() => expect(screen.getByRole('heading', { name: /Plan/ }).textContent).toContain('667'));
    expect(fetch).toHaveBeenCalledTimes(4); // 500 at a time
    expect(screen.getByRole('heading', { name: /Code/ }).textContent).toContain('667');
    expect(screen.getByRole('heading', { name: /Test/ }).textContent).toContain('666');
    const cards = screen.getAllByRole('listitem');
    expect(cards.length).toBeLessThan(60);
    // Newest change first.
    const plan = screen.getByRole('list', { name: 'Plan column' });
    expect(within(plan).getAllByRole('button')[0]?.textContent).toContain('#2998');
  });

  it('filters by status class and text from the URL', async () => {
    servePages(items());
    window.history.replaceState(null, '', '/pipeline?status=failed');
    renderWith(<Pipeline />);
    await waitFor(() => expect(screen.getByRole('heading', { name: /Plan/ }).textContent).toMatch(/Plan\s*67$/));
    expect(screen.getByRole('heading', { name: /Code/ }).textContent).toMatch(/Code\s*67/);

    fireEvent.change(screen.getByRole('searchbox'), { target: { value: 'feat/x' } });
    expect(window.location.search).toContain('q=feat%2Fx');
    // Failed (i % 10 == 0) and on feat/x (i % 7 == 0): i % 70 == 0, 29 of them.
    const total = ['Plan', 'Code', 'Test'].reduce((n, c) => n + Number(screen.getByRole('heading', { name: new RegExp(c) }).textContent?.replace(/\D/g, '')), 0);
    expect(total).toBe(29);
  });

  it('shows only the chosen stage column', async () => {
    servePages(items());
    window.history.replaceState(null, '', '/pipeline?stage=code');
    renderWith(<Pipeline />);
    await waitFor(() => expect(screen.getByRole('heading', { name: /Code/ })).toBeTruthy());
    expect(screen.queryByRole('heading', { name: /^Plan/ })).toBeNull();
  });

  it('adds an item that arrives on the socket without a reload', async () => {
    servePages(items().slice(0, 10));
    const { store } = renderWith(<Pipeline />);
    await waitFor(() => expect(screen.getAllByRole('listitem').length).toBe(10));
    act(() => {
      store.push({ type: 'workitem', item: workItem('4242', { test: stage({ status: 'queued', status_class: 'queued' }) }, { updated_at: '2027-01-01T00:00:00Z' }), merged_from: null });
      store.flush();
    });
    expect(screen.getByText('#4242')).toBeTruthy();
  });
});
