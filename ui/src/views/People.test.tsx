import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';
import { App } from '../App';
import type { Group, Person, Roles } from '../people';
import { FakeSocket, deferred, json, mockFetch, renderWith } from '../test-utils';
import { People } from './People';

const HOUR = 3600_000;

function person(id: string, overrides: Partial<Person> = {}): Person {
  return {
    id,
    subject: `sub-${id}`,
    email: `${id}@example.test`,
    display_name: null,
    groups: [],
    scim_groups: [],
    scopes: [],
    active: true,
    created_at: '2026-10-01T09:00:00Z',
    last_sign_in_at: null,
    external_id: null,
    user_name: null,
    source: 'sso',
    ...overrides,
  };
}

const alice = person('usr_alice', { display_name: 'Alice Liddell', groups: ['cfactory-admins'], scopes: ['read', 'write', 'admin'], last_sign_in_at: new Date(Date.now() - 3 * HOUR).toISOString() });
const bob = person('usr_bob', { display_name: 'Bob Stone', groups: [], scim_groups: [{ id: 'grp_eng', display_name: 'engineering' }], scopes: ['read'], source: 'scim', user_name: 'bob', external_id: 'okta-42' });
const carol = person('usr_carol', { email: 'carol@example.test', active: false });

const groups: Group[] = [
  { id: 'grp_admins', display_name: 'cfactory-admins', external_id: null, members: [{ id: 'usr_alice', label: 'Alice Liddell' }], scopes: ['read', 'write', 'admin'] },
  { id: 'grp_eng', display_name: 'engineering', external_id: 'okta-g-7', members: [{ id: 'usr_bob', label: 'Bob Stone' }, { id: 'usr_carol', label: 'carol@example.test' }], scopes: ['read'] },
];

const roles: Roles = { sso: true, roles: [{ group: 'cfactory-admins', scopes: ['read', 'write', 'admin'] }, { group: 'engineering', scopes: ['read'] }] };

function serve(overrides: Record<string, unknown> = {}) {
  return mockFetch({ 'GET /api/users': { users: [alice, bob, carol] }, 'GET /api/groups': { groups }, 'GET /api/roles': roles, ...overrides });
}

/**
 * `/api/users` answering `first` at once and every later request only when the test
 * releases it with the list then current, so a test can see the row change before the
 * refetched list arrives.
 */
function heldUsers(first: Person[]) {
  const later = deferred<void>();
  let current = first;
  let gets = 0;
  return {
    set: (users: Person[]) => (current = users),
    release: () => later.resolve(),
    gets: () => gets,
    answer: async () => {
      gets++;
      if (gets > 1) await later.promise;
      return json({ users: current });
    },
  };
}

const rowOf = (id: string) => document.querySelector(`tr[data-person-id="${id}"]`) as HTMLElement;
const names = () => [...document.querySelectorAll('tr[data-person-id] th')].map((th) => th.firstChild?.textContent);

describe('People', () => {
  it('shows each user with source, groups, scopes, state and last sign-in, and the groups and roles', async () => {
    serve();
    renderWith(<People />);
    const table = await screen.findByRole('table', { name: 'Users, oldest first' });
    expect(within(table).getAllByRole('columnheader').map((h) => h.textContent)).toEqual(['Person', 'Source', 'Groups', 'Scopes granted', 'State', 'Last sign-in', 'Created', 'Actions']);
    expect(names()).toEqual(['Alice Liddell', 'Bob Stone', 'carol@example.test']);

    const a = rowOf('usr_alice');
    expect(a.textContent).toContain('alice@example.test');
    expect(a.querySelector('[data-source]')?.textContent).toBe('SSO');
    expect(a.textContent).toContain('cfactory-admins');
    expect([...a.querySelectorAll('.scope-list code')].map((c) => c.textContent)).toEqual(['read', 'write', 'admin']);
    expect(a.querySelector('[data-state]')?.textContent).toBe('active');
    const seen = a.querySelector('time') as HTMLElement;
    expect(seen.firstChild?.textContent).toBe('3h ago');
    expect(seen.getAttribute('title')).toBeTruthy();
    expect(seen.getAttribute('dateTime')).toBe(alice.last_sign_in_at);

    expect(rowOf('usr_bob').querySelector('[data-source]')?.textContent).toBe('SCIM');
    expect(rowOf('usr_bob').textContent).toContain('engineering');
    const c = rowOf('usr_carol');
    expect(c.querySelector('[data-state]')?.textContent).toBe('inactive');
    expect(c.textContent).toContain('never');
    expect(within(c).getByRole('button', { name: 'Reactivate carol@example.test' })).toBeTruthy();
    expect(within(c).queryByRole('button', { name: /^Deactivate/ })).toBeNull();

    const eng = document.querySelector('tr[data-group-id="grp_eng"]') as HTMLElement;
    expect(eng.querySelector('[data-member-count]')?.textContent).toBe('2 members');
    expect(within(eng).getByRole('list', { name: 'Members of engineering' }).textContent).toContain('Bob Stone');
    expect(eng.textContent).toContain('okta-g-7');
    const role = document.querySelector('tr[data-role-group="cfactory-admins"]') as HTMLElement;
    expect([...role.querySelectorAll('code')].map((c) => c.textContent)).toEqual(['read', 'write', 'admin']);
    expect(document.querySelector('[data-roles-empty]')).toBeNull();
  });

  it('says single sign-on and roles are not configured when the server has none', async () => {
    serve({ 'GET /api/roles': { sso: false, roles: [] } });
    renderWith(<People />);
    await screen.findByRole('table', { name: 'Users, oldest first' });
    const empty = await waitFor(() => document.querySelector('[data-roles-empty]') as HTMLElement);
    expect(empty.textContent).toContain('Single sign-on is not configured');
    expect(screen.queryByRole('table', { name: /^Roles/ })).toBeNull();
  });

  it('filters users by name, email or group', async () => {
    serve();
    renderWith(<People />);
    await screen.findByRole('table', { name: 'Users, oldest first' });
    const box = screen.getByLabelText('Filter people');
    fireEvent.change(box, { target: { value: 'ENGINEER' } });
    expect(names()).toEqual(['Bob Stone']);
    expect(document.querySelector('[data-people-count]')?.textContent).toBe('1 of 3 people');
    fireEvent.change(box, { target: { value: 'carol@' } });
    expect(names()).toEqual(['carol@example.test']);
    fireEvent.change(box, { target: { value: 'alice' } });
    expect(names()).toEqual(['Alice Liddell']);
    fireEvent.change(box, { target: { value: 'nobody' } });
    expect(names()).toEqual([]);
    expect(screen.getByText(/No one matches/).textContent).toContain('nobody');
  });

  it('deactivates a user only after the confirm step, sending the PATCH and updating the row', async () => {
    const patches: { path: string; body: unknown }[] = [];
    const users = heldUsers([alice, bob, carol]);
    const fetch = serve({
      'GET /api/users': users.answer,
      'PATCH /api/users/usr_bob': (u: URL, init?: RequestInit) => {
        const body = JSON.parse(String(init?.body)) as { active: boolean };
        patches.push({ path: u.pathname, body });
        const now = { ...bob, active: body.active };
        users.set([alice, now, carol]);
        return json(now);
      },
    });
    renderWith(<People />);
    fireEvent.click(await screen.findByRole('button', { name: 'Deactivate Bob Stone' }));
    const confirm = screen.getByRole('article', { name: 'Deactivate Bob Stone?' });
    expect(confirm.textContent).toContain('PATCH /api/users/usr_bob');
    expect(within(confirm).getByRole('group', { name: 'Request body' }).textContent).toBe(JSON.stringify({ active: false }, null, 2));
    expect(confirm.querySelector('[data-scim-note]')).not.toBeNull();
    expect(fetch.mock.calls.some(([, init]) => init?.method === 'PATCH')).toBe(false);

    fireEvent.click(within(confirm).getByRole('button', { name: 'Confirm: deactivate' }));
    await waitFor(() => expect(rowOf('usr_bob').querySelector('[data-state]')?.textContent).toBe('inactive'));
    expect(patches).toEqual([{ path: '/api/users/usr_bob', body: { active: false } }]);
    expect(screen.queryByRole('article')).toBeNull();
    expect(document.querySelector('[data-outcome]')?.textContent).toContain('Bob Stone is deactivated');
    expect(within(rowOf('usr_bob')).getByRole('button', { name: 'Reactivate Bob Stone' })).toBeTruthy();

    // The list is fetched again, and the fresh copy agrees.
    expect(users.gets()).toBe(2);
    users.release();
    await waitFor(() => expect(fetch.mock.calls.filter(([u]) => String(u) === '/api/users').length).toBe(2));
    expect(rowOf('usr_bob').querySelector('[data-state]')?.textContent).toBe('inactive');
  });

  it('sends nothing when the confirm step is cancelled', async () => {
    const fetch = serve();
    renderWith(<People />);
    const button = await screen.findByRole('button', { name: 'Deactivate Alice Liddell' });
    fireEvent.click(button);
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(screen.queryByRole('article')).toBeNull();
    expect(document.activeElement).toBe(button);
    expect(fetch.mock.calls.every(([, init]) => (init?.method ?? 'GET') === 'GET')).toBe(true);
  });

  it('deletes a user after confirming and drops the row', async () => {
    const deleted: string[] = [];
    const users = heldUsers([alice, bob, carol]);
    serve({
      'GET /api/users': users.answer,
      'DELETE /api/users/usr_carol': (u: URL) => {
        deleted.push(u.pathname);
        users.set([alice, bob]);
        return new Response(null, { status: 204 });
      },
    });
    renderWith(<People />);
    fireEvent.click(await screen.findByRole('button', { name: 'Delete carol@example.test' }));
    const confirm = screen.getByRole('article', { name: 'Delete carol@example.test?' });
    expect(confirm.textContent).toContain('DELETE /api/users/usr_carol');
    expect(confirm.querySelector('[data-scim-note]')).toBeNull();
    fireEvent.click(within(confirm).getByRole('button', { name: 'Confirm: delete' }));
    await waitFor(() => expect(names()).toEqual(['Alice Liddell', 'Bob Stone']));
    expect(deleted).toEqual(['/api/users/usr_carol']);
    expect(document.querySelector('[data-people-count]')?.textContent).toBe('2 people');
    expect(users.gets()).toBe(2);
    users.release();
    await waitFor(() => expect(names()).toEqual(['Alice Liddell', 'Bob Stone']));
  });

  it('shows the refusal of a change in the confirm step and keeps the row as it was', async () => {
    serve({ 'PATCH /api/users/usr_alice': () => json({ title: 'Conflict', status: 409, detail: 'you cannot deactivate yourself' }, 409) });
    renderWith(<People />);
    fireEvent.click(await screen.findByRole('button', { name: 'Deactivate Alice Liddell' }));
    fireEvent.click(screen.getByRole('button', { name: 'Confirm: deactivate' }));
    expect((await screen.findByRole('alert')).textContent).toBe('Refused: you cannot deactivate yourself');
    expect(rowOf('usr_alice').querySelector('[data-state]')?.textContent).toBe('active');
    expect(screen.getByRole('article', { name: 'Deactivate Alice Liddell?' })).toBeTruthy();
  });

  it('says clearly when the server refuses for want of the admin scope', async () => {
    const forbidden = json({ title: 'Forbidden', status: 403, detail: 'this needs the admin scope' }, 403);
    mockFetch({ '/api/users': () => forbidden.clone(), '/api/groups': () => forbidden.clone(), '/api/roles': () => forbidden.clone() });
    renderWith(<People />);
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('managing people needs the admin scope');
    expect(alert.textContent).toContain('this needs the admin scope');
    expect(screen.queryByRole('table')).toBeNull();
  });

  it('shows loading first, and a failed part of the view without losing the others', async () => {
    serve({ 'GET /api/groups': () => json({ title: 'Internal Server Error', status: 500, detail: 'the store is unavailable' }, 500) });
    renderWith(<People />);
    expect(screen.getByText('Loading the users…')).toBeTruthy();
    await screen.findByRole('table', { name: 'Users, oldest first' });
    expect((await screen.findByText(/Could not load the groups/)).textContent).toContain('the store is unavailable');
    expect(await screen.findByRole('table', { name: /^Roles/ })).toBeTruthy();
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('asks for the admin scope without calling the server when the session lacks it', async () => {
    const fetch = serve();
    renderWith(<People />, { session: { tenant: 't', scopes: ['read', 'write'], open_mode: false } });
    expect(screen.getByText('Seeing and managing people needs the admin scope.')).toBeTruthy();
    expect(fetch).not.toHaveBeenCalled();
  });
});

describe('the People link', () => {
  beforeEach(() => FakeSocket.install());

  it('is in the navigation for admins only', async () => {
    mockFetch({ '/api/session': { tenant: 'default', scopes: ['read', 'write'], open_mode: false } });
    const first = render(<App />);
    const nav = await screen.findByRole('navigation', { name: 'Views' });
    expect(nav.querySelector('a[href="/audit"]')).not.toBeNull();
    expect(nav.querySelector('a[href="/people"]')).toBeNull();
    first.unmount();

    mockFetch({ '/api/session': { tenant: 'default', scopes: ['read', 'admin'], open_mode: false } });
    render(<App />);
    const adminNav = await screen.findByRole('navigation', { name: 'Views' });
    expect(adminNav.querySelector('a[href="/people"]')?.textContent).toBe('People');
  });
});
