import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { ServiceView } from '../api';
import { json, mockFetch, renderWith } from '../test-utils';
import { Services } from './Services';

const view = (service: ServiceView['service'], url: string | null, status: ServiceView['health']['status']): ServiceView => ({
  service,
  url,
  configured: url !== null,
  token_set: url !== null && service === 'pfactory',
  health: { service, status, detail: status === 'offline' ? 'connection refused' : null, latency_ms: status === 'online' ? 8 : null, checked_at: new Date().toISOString() },
});

const services = [view('pfactory', 'http://127.0.0.1:3101', 'online'), view('aifactory', 'http://127.0.0.1:3102', 'offline'), view('tfactory', null, 'unknown')];

describe('Services', () => {
  it('shows each service health and URL, with no edit controls for a read-only user', async () => {
    mockFetch({ '/api/services': { services } });
    renderWith(<Services />, { session: { tenant: 't', scopes: ['read'], open_mode: false } });
    const list = await screen.findByRole('list', { name: 'Upstream services' });
    const rows = within(list).getAllByRole('listitem');
    expect(rows.map((r) => r.querySelector('[data-health]')?.textContent)).toEqual(['online', 'offline', 'unknown']);
    expect(rows[1]?.textContent).toContain('connection refused');
    expect(rows[2]?.textContent).toContain('not configured');
    expect(rows[0]?.querySelector('[data-token-set]')?.textContent).toContain('token set');
    expect(rows[1]?.querySelector('[data-token-set]')?.textContent).toContain('no token');
    expect(rows[2]?.querySelector('[data-token-set]')).toBeNull();
    expect(screen.queryByRole('button', { name: /Edit/ })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Check now' })).toBeNull();
  });

  it('lets a write-scoped user check now but not change a URL', async () => {
    mockFetch({ '/api/services': { services } });
    renderWith(<Services />, { session: { tenant: 't', scopes: ['read', 'write'], open_mode: false } });
    expect(await screen.findByRole('button', { name: 'Check now' })).toBeTruthy();
    expect(screen.queryByRole('button', { name: /Edit/ })).toBeNull();
  });

  it('lets an admin change a URL and shows the server refusal', async () => {
    let puts = 0;
    const bodies: unknown[] = [];
    mockFetch({
      'GET /api/services': { services },
      'PUT /api/services/aifactory': (_u: URL, init?: RequestInit) => {
        puts++;
        const body = JSON.parse(String(init?.body)) as { url: string };
        bodies.push(body);
        const { url } = body;
        return url.startsWith('http://')
          ? json(view('aifactory', url, 'online'))
          : json({ title: 'Unprocessable content', status: 422, detail: 'url must be an absolute http(s) URL', field: 'url' }, 422);
      },
    });
    renderWith(<Services />, { session: { tenant: 't', scopes: ['read', 'admin'], open_mode: false } });
    fireEvent.click(await screen.findByRole('button', { name: 'Edit the URL of AIFactory' }));
    const input = screen.getByLabelText('Base URL of AIFactory');
    fireEvent.change(input, { target: { value: 'ftp://nope' } });
    fireEvent.submit(input.closest('form') as HTMLFormElement);
    expect((await screen.findByRole('alert')).textContent).toContain('absolute http(s) URL');

    fireEvent.change(input, { target: { value: 'http://10.0.0.5:3102' } });
    fireEvent.change(screen.getByLabelText('Token of AIFactory'), { target: { value: 'tok-new' } });
    fireEvent.submit(input.closest('form') as HTMLFormElement);
    await waitFor(() => expect(screen.queryByLabelText('Base URL of AIFactory')).toBeNull());
    expect(puts).toBe(2);
    expect(bodies[0]).toEqual({ url: 'ftp://nope' });
    expect(bodies[1]).toEqual({ url: 'http://10.0.0.5:3102', token: 'tok-new' });
  });
  it('shows a degraded service with the failed route and each live feed state', async () => {
    const tf: ServiceView = {
      ...view('tfactory', 'http://127.0.0.1:3103', 'degraded'),
      health: { service: 'tfactory', status: 'degraded', detail: 'GET /api/tasks: HTTP 500', latency_ms: 4, checked_at: new Date().toISOString() },
      feeds: { '/ws/events': { state: 'unauthorized', detail: 'closed with code 4001 (Unauthorized)' }, '/ws/progress': { state: 'connected' } },
    };
    mockFetch({ '/api/services': { services: [tf] } });
    renderWith(<Services />, { session: { tenant: 't', scopes: ['read'], open_mode: false } });
    const row = (await screen.findByRole('list', { name: 'Upstream services' })).querySelector('[data-service="tfactory"]') as HTMLElement;
    const badge = row.querySelector('[data-health]') as HTMLElement;
    expect(badge.textContent).toBe('degraded');
    expect(badge.className).toContain('tone-amber');
    expect(row.textContent).toContain('GET /api/tasks: HTTP 500');
    const feeds = within(row).getByRole('list', { name: 'Live feeds of TFactory' });
    const states = [...feeds.querySelectorAll('[data-feed]')].map((li) => [li.getAttribute('data-feed'), li.getAttribute('data-feed-state')]);
    expect(states).toEqual([
      ['/ws/events', 'unauthorized'],
      ['/ws/progress', 'connected'],
    ]);
    expect(feeds.textContent).toContain('4001');
  });
});
