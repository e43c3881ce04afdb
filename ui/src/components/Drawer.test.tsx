import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import { FakeSocket, mockFetch, renderWith, stage, workItem } from '../test-utils';
import { Drawer, belowTarget, verificationText } from './Drawer';

// xterm.js stays out of jsdom: the console's terminal records nothing here.
vi.mock('./terminal', () => ({ openTerminal: () => ({ write: () => {}, dispose: () => {} }) }));

const item = workItem(
  '185',
  {
    plan: stage({ status: 'emitted', status_class: 'done', proof: 'proven', task_id: '011-dark' }),
    code: stage({ status: 'done', status_class: 'done', proof: 'unproven', task_id: 'proj:012', injection_scan: { verdict: 'flagged', reason: 'asks for secrets' }, usage: { input_tokens: 90, output_tokens: 10, total_tokens: 100, cost_usd: 0, notional_cost_usd: 0 } }),
  },
  {
    title: 'Dark mode for the dashboard',
    aliases: ['pf-011-dark'],
    links: { session_id: '011-dark', issue_number: 185, aifactory_task_ids: ['proj:012'], branch: 'af/185-dark', pr_number: 318, tfactory_spec_ids: ['spec-009'], repo: null, emitted_issues: [] },
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

// A unit PFactory planned in acme/shop: its key names the repository, and PFactory emitted
// an epic and a child issue for it.
const qualified = workItem(
  'acme/shop#7150',
  {
    plan: stage({ status: 'emitted', status_class: 'done', proof: 'proven', task_id: '020-cart' }),
    code: stage({
      status: 'done',
      status_class: 'done',
      proof: 'proven',
      task_id: 'shop:7150',
      // A subscription worker: tokens and notional dollars, no metered spend.
      usage: { input_tokens: 1_000, output_tokens: 200, total_tokens: 1_200, cost_usd: 0, notional_cost_usd: 0.3 },
    }),
    test: stage({
      status: 'triaged',
      status_class: 'review',
      outcome: 'human_review',
      review_reason: 'human_review',
      halt_reason: 'the smoke suite needs a person to judge the checkout screenshots',
      proof: 'unproven',
      task_id: 'spec-031',
      usage: { input_tokens: 400, output_tokens: 100, total_tokens: 500, cost_usd: 0.12, notional_cost_usd: 0 },
      verification: {
        target_level: 'VAL-2',
        achieved_level: 'VAL-0',
        claim: 'Checkout totals match the cart for the sampled carts',
        levels: [
          { level: 'VAL-0', status: 'passed', reason: null },
          { level: 'VAL-1', status: 'failed', reason: 'two carts disagree on tax' },
          { level: 'VAL-2', status: 'skipped', reason: 'needs VAL-1' },
        ],
      },
    }),
  },
  {
    title: 'Cart checkout totals',
    aliases: ['acme/shop#7151', 'acme/shop#7152'],
    links: {
      session_id: '020-cart',
      repo: 'acme/shop',
      issue_number: 7150,
      emitted_issues: [7151, 7152],
      aifactory_task_ids: ['shop:7150'],
      branch: null,
      pr_number: null,
      tfactory_spec_ids: ['spec-031'],
    },
    usage_total: { input_tokens: 1_400, output_tokens: 300, total_tokens: 1_700, cost_usd: 0.12, notional_cost_usd: 0.3 },
    event_count: 4,
  },
);

describe('work-item drawer: repository-qualified keys, verification and notional dollars', () => {
  const path = '/api/workitems/acme%2Fshop%237150';

  it('asks for a repository-qualified key encoded, and shows it as sent', async () => {
    const fetch = mockFetch({ [path]: qualified, [`${path}/timeline`]: { ...timeline, correlation_key: 'acme/shop#7150' } });
    renderWith(<Drawer taskKey="acme/shop#7150" />);

    const dialog = await screen.findByRole('dialog', { name: /^acme\/shop#7150 Cart checkout totals$/ });
    // The drawer's other reads start after the item shows: wait for them, not a moment.
    await waitFor(() => {
      const asked = fetch.mock.calls.map(([u]) => String(u));
      for (const tail of ['', '/timeline', '/process', '/actions']) expect(asked).toContain(`${path}${tail}`);
    });
    const urls = fetch.mock.calls.map(([u]) => String(u));
    // Nothing went out with the key raw: a bare "#" would cut the path short.
    expect(urls.filter((u) => u.includes('acme/shop'))).toEqual([]);

    const chain = within(dialog).getByRole('list', { name: 'Chain from plan to test' });
    expect(within(chain).getAllByRole('listitem')[1]?.textContent).toBe('Issueacme/shop#7150 · emitted #7151, #7152');
  });

  it('shows the test stage verified below its target, with the levels, claim and halt reason', async () => {
    mockFetch({ [path]: qualified });
    renderWith(<Drawer taskKey="acme/shop#7150" />);
    const dialog = await screen.findByRole('dialog', { name: /Cart checkout totals/ });
    const test = dialog.querySelector('tr[data-stage="test"]') as HTMLElement;

    const chip = test.querySelector('[data-tone]') as HTMLElement;
    expect(chip.dataset.tone).toBe('violet');
    expect(chip.textContent).toContain('triaged · human review');
    expect(test.textContent).toContain('halted: the smoke suite needs a person to judge the checkout screenshots');
    expect(test.querySelector('[data-review-reason]')?.textContent).toBe('waits for: human review');
    expect(dialog.querySelector('tr[data-stage="code"] [data-review-reason]')).toBeNull();

    const v = test.querySelector('[data-verification]') as HTMLElement;
    expect(v.dataset.verification).toBe('below');
    expect(v.textContent).toContain('verified VAL-0 of target VAL-2');
    expect(within(v).getByText('below target')).toBeTruthy();
    expect(within(v).getByText('Checkout totals match the cart for the sampled carts')).toBeTruthy();
    const levels = within(v).getByRole('list', { name: 'Verification levels' });
    expect(within(levels).getAllByRole('listitem').map((li) => li.textContent)).toEqual([
      'VAL-0 passed',
      'VAL-1 failed: two carts disagree on tax',
      'VAL-2 skipped: needs VAL-1',
    ]);
    // Stages without a verification say nothing about one.
    expect(dialog.querySelector('tr[data-stage="code"] [data-verification]')).toBeNull();
  });

  it('shows notional dollars apart from spend, never added to it', async () => {
    mockFetch({ [path]: qualified });
    renderWith(<Drawer taskKey="acme/shop#7150" />);
    const dialog = await screen.findByRole('dialog', { name: /Cart checkout totals/ });

    const code = dialog.querySelector('tr[data-stage="code"]') as HTMLElement;
    const usage = code.lastElementChild as HTMLElement;
    expect(usage.textContent).toBe('1,200 tokens$0.30 notional');
    const notional = usage.querySelector('[data-notional]') as HTMLElement;
    expect(notional.textContent).toBe('$0.30 notional');
    expect(notional.className).toContain('muted');

    const test = dialog.querySelector('tr[data-stage="test"]') as HTMLElement;
    expect(test.lastElementChild?.textContent).toBe('500 tokens · $0.12');

    // The total: metered spend is $0.12, not $0.42; the $0.30 is named notional.
    const total = within(dialog).getByText(/events ·/);
    expect(total.textContent).toContain('$0.12 metered');
    expect(total.textContent).toContain('$0.30 notional, not spend');
    expect(total.textContent).not.toContain('$0.42');
  });
});

describe('verification levels', () => {
  it('compares achieved against target by the listed order, else by level number', () => {
    const levels = [{ level: 'smoke', status: 'passed' }, { level: 'full', status: 'failed' }];
    expect(belowTarget({ target_level: 'full', achieved_level: 'smoke', levels })).toBe(true);
    expect(belowTarget({ target_level: 'smoke', achieved_level: 'full', levels })).toBe(false);
    expect(belowTarget({ target_level: 'VAL-2', achieved_level: 'VAL-2' })).toBe(false);
    expect(belowTarget({ target_level: 'VAL-1', achieved_level: 'VAL-3' })).toBe(false);
    expect(belowTarget({ target_level: 'VAL-1', achieved_level: null })).toBe(true);
    expect(belowTarget({ achieved_level: 'VAL-1' })).toBeNull();
    expect(belowTarget({ target_level: 'gold', achieved_level: 'silver' })).toBeNull();
    expect(verificationText({ target_level: 'VAL-2' })).toBe('no level verified of target VAL-2');
    expect(verificationText({ achieved_level: 'VAL-1' })).toBe('verified VAL-1');
  });
});

describe('the drawer’s console', () => {
  const running = workItem('601', { code: stage({ task_id: 'proj:001' }) });
  const routes = (agents: unknown[]) => ({
    '/api/workitems/601': running,
    '/api/workitems/601/timeline': { ...timeline, correlation_key: '601', events: [] },
    '/api/workitems/601/process': { available: false, reason: 'no graph' },
    '/api/live-agents': { enabled: true, detail: null, agents },
  });

  it('offers the console while the item’s agent runs, and not otherwise', async () => {
    window.history.replaceState(null, '', '/pipeline?task=601');
    mockFetch(routes([{ correlation_key: '601', service: 'aifactory', task_id: 'proj:001', title: 'Item 601', status: 'in_progress', started_at: '2026-11-01T09:00:00Z' }]));
    const { unmount } = renderWith(<Drawer taskKey="601" />);
    const dialog = await screen.findByRole('dialog');
    const watch = await within(dialog).findByRole('button', { name: 'Watch the agent’s console' });
    expect(watch.closest('section')?.textContent).toContain('AIFactory task proj:001 is running.');
    unmount();

    mockFetch(routes([{ correlation_key: '602', service: 'aifactory', task_id: 'proj:002', title: 'Item 602', status: 'in_progress', started_at: '2026-11-01T09:00:00Z' }]));
    renderWith(<Drawer taskKey="601" />);
    const other = await screen.findByRole('dialog');
    await within(other).findByRole('list', { name: 'Timeline, oldest first' });
    await waitFor(() => expect(within(other).queryByRole('heading', { name: 'Console' })).toBeNull());
  });

  it('opens the console from the link, and closing the drawer closes it', async () => {
    FakeSocket.install();
    window.history.replaceState(null, '', '/agents?task=601&console=1');
    mockFetch(routes([]));
    renderWith(<Drawer taskKey="601" />);
    const dialog = await screen.findByRole('dialog');
    await within(dialog).findByRole('region', { name: 'Agent console of #601' });
    await waitFor(() => expect(FakeSocket.last().url).toMatch(/\/api\/live-agents\/601\/ws$/));
    fireEvent.click(within(dialog).getByRole('button', { name: 'Close the work item' }));
    expect(window.location.pathname + window.location.search).toBe('/agents');
  });
});
