import { fireEvent, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { mockFetch, renderWith } from '../test-utils';
import { Agents } from './Agents';

const agent = (key: string, task: string, started: string) => ({
  correlation_key: key,
  service: 'aifactory',
  task_id: task,
  title: `Item ${key}`,
  status: 'in_progress',
  started_at: started,
});

describe('Agents view', () => {
  it('lists the live consoles and opens one in the drawer', async () => {
    window.history.replaceState(null, '', '/agents');
    mockFetch({ '/api/live-agents': { enabled: true, detail: null, agents: [agent('601', 'proj:001', '2026-11-01T10:00:00Z'), agent('acme/shop#7', 'proj:002', '2026-11-01T09:00:00Z')] } });
    renderWith(<Agents />);
    const list = await screen.findByRole('list', { name: 'Live agent consoles' });
    const rows = within(list).getAllByRole('listitem');
    expect(rows.map((r) => r.getAttribute('data-agent'))).toEqual(['601', 'acme/shop#7']);
    expect(rows[0]?.textContent).toContain('AIFactory task proj:001 · in_progress');
    expect(screen.getByText('2 live')).toBeTruthy();

    fireEvent.click(within(rows[1] as HTMLElement).getByRole('button', { name: 'Watch the console of acme/shop#7' }));
    const url = new URL(window.location.href);
    expect(url.pathname).toBe('/agents');
    expect(url.searchParams.get('task')).toBe('acme/shop#7');
    expect(url.searchParams.get('console')).toBe('1');
  });

  it('says when consoles are off, and why', async () => {
    mockFetch({ '/api/live-agents': { enabled: false, detail: 'aifactory does not serve agent consoles', agents: [] } });
    renderWith(<Agents />);
    const note = await screen.findByText(/Agent consoles are off/);
    expect(note.textContent).toBe('Agent consoles are off: aifactory does not serve agent consoles.');
    expect(screen.queryByRole('list', { name: 'Live agent consoles' })).toBeNull();
  });

  it('says when nothing runs', async () => {
    mockFetch({ '/api/live-agents': { enabled: true, detail: null, agents: [] } });
    renderWith(<Agents />);
    expect(await screen.findByText('No agent is running with a console right now.')).toBeTruthy();
  });
});
