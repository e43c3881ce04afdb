import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';
import { App } from '../App';
import { FakeSocket, json, mockFetch } from '../test-utils';

const GOOD = 'cfk_good_key';
const BAD = 'cfk_wrong_key';

describe('sign-in', () => {
  beforeEach(() => FakeSocket.install());

  it('refuses a wrong key clearly, accepts a right one, and never stores or links the key', async () => {
    let signedIn = false;
    const fetch = mockFetch({
      'GET /api/session': () =>
        signedIn ? json({ tenant: 'acme', scopes: ['read'], open_mode: false }) : json({ title: 'Unauthorized', status: 401, detail: 'no key' }, 401),
      'POST /api/session': (_url: URL, init?: RequestInit) => {
        const { key } = JSON.parse(String(init?.body)) as { key: string };
        if (key !== GOOD) return json({ title: 'Unauthorized', status: 401, detail: 'unknown or revoked API key' }, 401);
        signedIn = true;
        return json({ tenant: 'acme', scopes: ['read'], open_mode: false });
      },
    });
    render(<App />);

    const field = await screen.findByLabelText('API key');
    expect((field as HTMLInputElement).type).toBe('password');
    fireEvent.change(field, { target: { value: BAD } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toMatch(/not accepted/);
    expect(field.getAttribute('aria-invalid')).toBe('true');

    fireEvent.change(field, { target: { value: GOOD } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByRole('heading', { name: 'Mission Control' });
    expect(screen.getByText('tenant acme')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Sign out' })).toBeTruthy();

    // The key went only in a POST body: not in any URL, not in the page's storage.
    for (const [url] of fetch.mock.calls) expect(String(url)).not.toContain('cfk_');
    expect(window.location.href).not.toContain('cfk_');
    expect(localStorage.length + sessionStorage.length).toBe(0);
    expect(document.cookie).not.toContain('cfk_');
  });

  it('offers single sign-on when the server has it, coming back to the page the person was on', async () => {
    window.history.replaceState(null, '', '/pipeline?task=7');
    mockFetch({
      'GET /api/session': () => json({ title: 'Unauthorized', status: 401, detail: 'no key' }, 401),
      'GET /api/auth/methods': () => json({ key: true, sso: { login_url: '/api/auth/oidc/login' } }),
    });
    render(<App />);
    const link = await screen.findByRole('link', { name: 'Sign in with SSO' });
    expect(link.getAttribute('href')).toBe('/api/auth/oidc/login?return_to=%2Fpipeline%3Ftask%3D7');
    // Keys stay, for automation.
    expect(screen.getByLabelText('API key')).toBeTruthy();
  });

  it('offers keys alone when single sign-on is not configured', async () => {
    let asked = false;
    mockFetch({
      'GET /api/session': () => json({ title: 'Unauthorized', status: 401, detail: 'no key' }, 401),
      'GET /api/auth/methods': () => {
        asked = true;
        return json({ key: true, sso: null });
      },
    });
    render(<App />);
    await screen.findByLabelText('API key');
    await waitFor(() => expect(asked).toBe(true));
    expect(screen.queryByRole('link', { name: 'Sign in with SSO' })).toBeNull();
  });

  it('names the person signed in by single sign-on', async () => {
    mockFetch({
      'GET /api/session': () =>
        json({
          tenant: 'acme',
          scopes: ['read'],
          open_mode: false,
          user: { id: 'usr_1', name: 'ada@acme.test', email: 'ada@acme.test', groups: ['ops'] },
        }),
    });
    render(<App />);
    await screen.findByRole('heading', { name: 'Mission Control' });
    expect(screen.getByText('ada@acme.test')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Sign out' })).toBeTruthy();
  });

  it('shows the sign-in page again when the session ends', async () => {
    let alive = true;
    mockFetch({
      'GET /api/session': () => json({ tenant: 'acme', scopes: ['read'], open_mode: false }),
      '/api/rollups': () => (alive ? json({}) : json({ title: 'Unauthorized', status: 401, detail: 'session ended' }, 401)),
    });
    render(<App />);
    await screen.findByRole('heading', { name: 'Mission Control' });
    alive = false;
    fireEvent.click(screen.getByRole('link', { name: /Tokens/ }));
    fireEvent.click(screen.getByRole('link', { name: 'Mission Control' }));
    await screen.findByText(/Your session ended/);
    expect(screen.getByLabelText('API key')).toBeTruthy();
  });
});
