import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';
import { App } from '../App';
import { FakeSocket, mockFetch, openSession } from '../test-utils';

const hit = { correlation_key: '185', title: 'Dark mode for the dashboard', matched_on: 'title', matched_value: 'Dark mode for the dashboard', score: 90 };

describe('command palette', () => {
  beforeEach(() => FakeSocket.install());

  it('opens on Ctrl-K, lists search results from the API and opens the chosen item', async () => {
    const fetch = mockFetch({
      '/api/session': openSession,
      '/api/search': (url: URL) => new Response(JSON.stringify({ query: url.searchParams.get('q'), count: 1, results: [hit] })),
    });
    render(<App />);
    await screen.findByRole('heading', { name: 'Mission Control' });
    await waitFor(() => expect(FakeSocket.sockets).toHaveLength(1)); // the shell's effects have run
    expect(screen.queryByRole('dialog', { name: 'Command palette' })).toBeNull();

    fireEvent.keyDown(window, { key: 'k', ctrlKey: true });
    const input = screen.getByRole('combobox');
    expect(document.activeElement).toBe(input);
    fireEvent.change(input, { target: { value: 'dark' } });

    const option = await screen.findByRole('option', { name: /#185 Dark mode for the dashboard/ });
    expect(option.getAttribute('aria-selected')).toBe('true');
    expect(fetch.mock.calls.some(([u]) => String(u) === '/api/search?q=dark&limit=8')).toBe(true);

    fireEvent.keyDown(input, { key: 'Enter' });
    expect(window.location.search).toBe('?task=185');
    expect(screen.queryByRole('dialog', { name: 'Command palette' })).toBeNull();
  });

  it('shows a repository-qualified key as sent and opens it encoded in the URL', async () => {
    const qualified = { correlation_key: 'acme/shop#7150', title: 'Cart checkout totals', matched_on: 'alias', matched_value: 'acme/shop#7151', score: 80 };
    mockFetch({ '/api/session': openSession, '/api/search': { query: '7151', count: 1, results: [qualified] } });
    render(<App />);
    await screen.findByRole('heading', { name: 'Mission Control' });
    await waitFor(() => expect(FakeSocket.sockets).toHaveLength(1)); // the shell's effects have run

    fireEvent.keyDown(window, { key: 'k', ctrlKey: true });
    const input = screen.getByRole('combobox');
    fireEvent.change(input, { target: { value: '7151' } });
    const option = await screen.findByRole('option', { name: /^acme\/shop#7150 Cart checkout totals/ });
    expect(option.textContent).toContain('alias: acme/shop#7151');

    fireEvent.keyDown(input, { key: 'Enter' });
    expect(window.location.search).toBe('?task=acme%2Fshop%237150');
  });

  it('opens on ⌘-K too, jumps to a view, and closes on Escape', async () => {
    mockFetch({ '/api/session': openSession, '/api/search': { query: 'pip', count: 0, results: [] } });
    render(<App />);
    await screen.findByRole('heading', { name: 'Mission Control' });
    await waitFor(() => expect(FakeSocket.sockets).toHaveLength(1)); // the shell's effects have run

    fireEvent.keyDown(window, { key: 'K', metaKey: true });
    fireEvent.change(screen.getByRole('combobox'), { target: { value: 'pipe' } });
    const option = screen.getByRole('option', { name: /Go to Pipeline/ });
    act(() => option.click());
    expect(window.location.pathname).toBe('/pipeline');
    await screen.findByRole('heading', { name: 'Pipeline' });

    fireEvent.keyDown(window, { key: 'k', ctrlKey: true });
    fireEvent.keyDown(within(screen.getByRole('dialog')).getByRole('combobox'), { key: 'Escape' });
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
  });

  it('offers People to an admin and not to a reader', async () => {
    for (const [scopes, offered] of [
      [['read', 'admin'], true],
      [['read'], false],
    ] as const) {
      mockFetch({ '/api/session': { ...openSession, open_mode: false, scopes }, '/api/search': { query: 'peo', count: 0, results: [] } });
      const { unmount } = render(<App />);
      await screen.findByRole('heading', { name: 'Mission Control' });
      fireEvent.keyDown(window, { key: 'k', ctrlKey: true });
      fireEvent.change(screen.getByRole('combobox'), { target: { value: 'peo' } });
      expect(screen.queryByRole('option', { name: /Go to People/ }) !== null).toBe(offered);
      unmount();
    }
  });
});
