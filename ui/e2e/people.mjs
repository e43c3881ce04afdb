// People in the browser: a SCIM client provisions two people and a group through the real
// server (`/scim/v2` on the API address, with a key of the `scim` scope), then an admin
// signs in, finds them on the People view, and deactivates one through the confirm step.

import { createKey, fail } from './harness.mjs';

const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';

/** POSTs a SCIM resource with the `scim` key; resolves with the created resource. */
async function provision(api, key, path, body) {
  const res = await fetch(`${api}/scim/v2/${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/scim+json', accept: 'application/scim+json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 201) fail(`POST /scim/v2/${path} answered ${res.status}: ${text}`);
  const created = JSON.parse(text);
  if (!created.id) fail(`POST /scim/v2/${path} answered no id: ${text}`);
  return created;
}

const user = (userName, displayName) => ({
  schemas: [USER_SCHEMA],
  userName,
  displayName,
  emails: [{ value: userName, primary: true }],
  active: true,
});

/**
 * The People run, on a started server whose store is `store` (where keys are made), with
 * `adminKey` to sign in. `step`, `axe`, `shot` and `watchPage` are the e2e run's own, so
 * this part reports, checks and pictures like the rest.
 */
export async function people(browser, { server, store, adminKey, step, axe, shot, watchPage }) {
  step('people: a SCIM client provisions two people and a group; an admin sees them and deactivates one');
  const scim = createKey(store, 'scim', 'e2e-scim');
  const ada = await provision(server.api, scim, 'Users', user('ada@example.test', 'Ada Lovelace'));
  const grace = await provision(server.api, scim, 'Users', user('grace@example.test', 'Grace Hopper'));
  const group = await provision(server.api, scim, 'Groups', { schemas: [GROUP_SCHEMA], displayName: 'analytical-engine', members: [{ value: ada.id }] });
  step(`  provisioned ${ada.id}, ${grace.id} and group ${group.id}`);

  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  try {
    const page = await context.newPage();
    watchPage(page, 'people');
    await page.goto(server.ui);
    await page.getByLabel('API key').fill(adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();

    step('  the admin opens People and finds both people and the group with its member');
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'People' }).click();
    await page.getByRole('heading', { name: 'People', level: 1 }).waitFor();
    const users = page.getByRole('table', { name: 'Users, oldest first' });
    await users.waitFor({ timeout: 10_000 }).catch(async () => fail(`the People view shows no users table: ${await page.locator('main').textContent()}`));
    const rows = await users.locator('tbody th').allTextContents();
    for (const name of ['Ada Lovelace', 'Grace Hopper']) {
      if (!rows.some((r) => r.startsWith(name))) fail(`People does not list ${name}: ${JSON.stringify(rows)}`);
    }
    const source = await users.locator('tr', { hasText: 'Grace Hopper' }).locator('[data-source]').textContent();
    if (source !== 'SCIM') fail(`Grace Hopper's source reads ${source}`);
    const adaRow = await users.locator('tr', { hasText: 'Ada Lovelace' }).textContent();
    if (!adaRow.includes('analytical-engine')) fail(`Ada Lovelace's row does not name her group: ${adaRow}`);
    const groupRow = page.getByRole('table', { name: 'Groups' }).locator('tr', { hasText: 'analytical-engine' });
    await groupRow.waitFor().catch(() => fail('People does not list the group analytical-engine'));
    const members = await groupRow.getByRole('list', { name: 'Members of analytical-engine' }).textContent();
    if (!/Ada Lovelace|ada@example\.test/.test(members) || /Grace|grace@/.test(members)) fail(`the group's members read: ${members}`);
    if ((await groupRow.locator('[data-member-count]').textContent()) !== '1 member') fail('the group does not count one member');
    await page.getByRole('heading', { name: 'Roles' }).waitFor();
    await axe(page, 'people');
    await shot(page, 'people');

    step('  deactivating a person shows the request first and takes effect once confirmed');
    const graceRow = users.locator('tr', { hasText: 'Grace Hopper' });
    await graceRow.getByRole('button', { name: 'Deactivate Grace Hopper' }).click();
    const confirm = page.getByRole('article', { name: 'Deactivate Grace Hopper?' });
    await confirm.waitFor();
    const request = await confirm.locator('.request').textContent();
    if (!request.includes(`PATCH /api/users/${grace.id}`)) fail(`the confirm step shows the request ${request}`);
    await axe(page, 'people confirm');
    await shot(page, 'people-confirm');
    await confirm.getByRole('button', { name: 'Confirm: deactivate' }).click();
    await graceRow.locator('[data-state]', { hasText: 'inactive' }).waitFor({ timeout: 10_000 }).catch(async () => {
      const refusal = await page.getByRole('alert').allTextContents();
      fail(`Grace Hopper does not show inactive after confirming${refusal.length ? `: ${refusal.join(' ')}` : ''}`);
    });
    const listed = await page.evaluate(async () => (await fetch('/api/users')).json());
    const stored = listed.users.find((u) => u.id === grace.id);
    if (stored?.active !== false) fail(`the server still has Grace Hopper as ${JSON.stringify(stored)}`);
    if (listed.users.find((u) => u.id === ada.id)?.active !== true) fail('deactivating Grace Hopper changed Ada Lovelace too');
    await shot(page, 'people-deactivated');
  } finally {
    await context.close();
  }
}
