import { act, fireEvent, render, screen } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';
import { App } from './App';
import { FakeSocket, mockFetch } from './test-utils';

describe('the shell', () => {
  beforeEach(() => FakeSocket.install());

  it('lists the Audit view and toggles the copilot with Ctrl-J, keeping its conversation', async () => {
    mockFetch({ '/api/session': { tenant: 'default', scopes: ['read', 'write'], open_mode: true } });
    render(<App />);
    const nav = await screen.findByRole('navigation', { name: 'Views' });
    expect(nav.querySelector('a[href="/audit"]')?.textContent).toBe('Audit');

    // Let the shell's effects (its key listener among them) run before pressing keys.
    await act(async () => {});
    const toggle = screen.getByRole('button', { name: /^Copilot/ });
    expect(toggle.getAttribute('aria-expanded')).toBe('false');
    act(() => {
      fireEvent.keyDown(window, { key: 'j', ctrlKey: true });
    });
    const panel = screen.getByRole('complementary', { name: 'Copilot' });
    expect(toggle.getAttribute('aria-expanded')).toBe('true');
    const box = screen.getByLabelText('Message to the copilot');
    expect(document.activeElement).toBe(box);
    fireEvent.change(box, { target: { value: 'draft question' } });

    act(() => {
      fireEvent.keyDown(window, { key: 'j', metaKey: true });
    });
    expect(panel.hidden).toBe(true);
    expect(toggle.getAttribute('aria-expanded')).toBe('false');

    fireEvent.click(toggle);
    expect(panel.hidden).toBe(false);
    expect((screen.getByLabelText('Message to the copilot') as HTMLTextAreaElement).value).toBe('draft question');
  });
});
