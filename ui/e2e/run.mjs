// End-to-end: the built cockpit in the system's Chromium against `cfactory demo` (server
// plus simulated PFactory/AIFactory/TFactory). Builds nothing: expects ui/dist and the
// binary (CFACTORY_BIN or target/debug/cfactory). Every view gets an axe-core check and
// a screenshot in target/ui-shots/. Exits non-zero, with the reason, on any failure.

import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UI_DIR, createKey, fail, ingest, launchBrowser, preflight, shotsDir, startServer, tempDataDir } from './harness.mjs';
import { people } from './people.mjs';
import { singleSignOn } from './sso.mjs';

const AXE = join(UI_DIR, 'node_modules/axe-core/axe.min.js');
/** The wait limit for a live change to reach the page; not a timing assertion. */
const LIVE_LIMIT_MS = 2000;
const GREEN = 'rgb(63, 185, 80)';

const shots = shotsDir();
rmSync(join(shots, 'failure.png'), { force: true });
/** The page being driven, pictured as `failure.png` when a step fails. */
let current = null;
const axeFindings = [];
const pageErrors = [];

function step(name) {
  console.log(`e2e: ${name}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}

/** axe-core on the page as it stands; serious and critical violations are collected. */
async function axe(page, view) {
  // Evaluated through the browser's debugging protocol, not a <script> tag: the cockpit's
  // Content-Security-Policy rightly refuses inline scripts.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(readFileSync(AXE, 'utf8'));
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  for (const v of result.violations) {
    if (v.impact !== 'serious' && v.impact !== 'critical') continue;
    axeFindings.push(`${view}: [${v.impact}] ${v.id}: ${v.help}\n    ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n    ')}`);
  }
}

/** Open a view by its nav link (client-side), check it and take its picture. */
async function visit(page, label, name, ready) {
  await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: label, exact: false }).first().click();
  await ready();
  await axe(page, name);
  await shot(page, name);
}

function watchPage(page, label) {
  current = page;
  page.on('pageerror', (e) => pageErrors.push(`${label}: ${e.message}`));
}

async function boardTotal(page) {
  const heads = await page.locator('.column-head .count').allTextContents();
  return heads.reduce((n, t) => n + Number(t.replace(/\D/g, '') || 0), 0);
}

/** Kinds tried first: the demo's handback and stuck scenarios offer these soonest. */
const PREFERRED = ['kick_handback', 'approve_gate', 'recover', 'trigger_handoff', 'reject_review'];

/** Polls the API over every item until one has an action available; returns the first few. */
async function candidates(api) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { items } = await (await fetch(`${api}/api/workitems?limit=500`)).json();
    const found = [];
    for (const item of items) {
      const res = await fetch(`${api}/api/workitems/${encodeURIComponent(item.correlation_key)}/actions`);
      if (!res.ok) fail(`GET /api/workitems/${item.correlation_key}/actions answered ${res.status}: ${await res.text()}`);
      const { available } = await res.json();
      if (available.length) found.push({ key: item.correlation_key, kind: PREFERRED.find((k) => available.includes(k)) ?? available[0] });
    }
    if (found.length) return found.sort((a, b) => PREFERRED.indexOf(a.kind) - PREFERRED.indexOf(b.kind));
    if (Date.now() > deadline) fail('no work item offered an action within 60 s of the demo starting');
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function actions(page, server) {
  step('actions: propose from the drawer, confirm, and see the result and the audit row');
  const list = await candidates(server.api);
  step(`  items with an action: ${list.map((c) => `#${c.key} ${c.kind}`).join(', ')}`);

  // The item may move on between the poll and the click: try the candidates in turn.
  let card = null;
  let chosen = null;
  for (const c of list) {
    await page.goto(`${server.ui}/?task=${encodeURIComponent(c.key)}`);
    const drawer = page.getByRole('dialog');
    const button = drawer.locator(`button[data-kind="${c.kind}"]`);
    const offered = await button.waitFor({ timeout: 5000 }).then(
      () => true,
      () => false,
    );
    if (!offered) continue;
    await drawer.getByLabel('Note for the proposal (optional)').fill('Proposed by the e2e run');
    await button.click();
    const made = drawer.getByRole('article').first();
    const ok = await made.waitFor({ timeout: 10_000 }).then(
      () => true,
      () => false,
    );
    if (!ok) {
      step(`  #${c.key}: ${await drawer.getByRole('alert').textContent().catch(() => 'no card and no reason')}`);
      continue;
    }
    card = made;
    chosen = c;
    break;
  }
  if (!card) fail('no proposal could be made from the drawer');
  const id = await card.getAttribute('data-action-id');
  step(`  proposed ${chosen.kind} on #${chosen.key}: action ${id}`);

  // The card shows exactly what the server stored, and nothing ran yet.
  const listed = await (await fetch(`${server.api}/api/workitems/${encodeURIComponent(chosen.key)}/actions`)).json();
  const stored = listed.actions.find((a) => a.id === id);
  if (!stored) fail(`action ${id} is not among the item's actions`);
  if (stored.status !== 'prepared') fail(`a fresh proposal is ${stored.status}, not prepared`);
  const firstRequest = (await card.locator('.request').first().textContent()).trim();
  if (firstRequest !== `${stored.method} ${stored.endpoint}`) fail(`the card shows "${firstRequest}", the server stored "${stored.method} ${stored.endpoint}"`);
  if (stored.payload !== null) {
    const body = await card.getByRole('group', { name: 'Body of step 1' }).textContent();
    if (body !== JSON.stringify(stored.payload, null, 2)) fail(`the card's body differs from the stored payload:\n${body}`);
  }
  if ((await card.locator('.steps[aria-label] > li.step').count()) !== 1 + stored.follow_ups.length) fail('the card does not show every step');
  if (!/Expires in \d+:\d\d/.test(await card.locator('[data-expiry]').textContent())) fail('the card shows no expiry countdown');
  await card.scrollIntoViewIfNeeded();
  await axe(page, 'proposal card');
  await shot(page, 'proposal-card');

  step('  confirm in the UI');
  await card.getByRole('button', { name: 'Confirm' }).click();
  await page
    .locator(`article[data-action-id="${id}"]:is([data-status="executed"], [data-status="failed"])`)
    .waitFor({ timeout: 30_000 })
    .catch(async () => fail(`the card did not settle within 30 s: ${await card.textContent()}`));
  const status = await card.getAttribute('data-status');
  const results = card.getByRole('status', { name: `Outcome: ${status}` }).getByRole('listitem');
  const n = await results.count();
  if (n === 0) fail(`the ${status} card shows no step results`);
  const lines = [];
  for (let i = 0; i < n; i++) lines.push((await results.nth(i).locator('.step-line').textContent()).replace(/\s+/g, ' ').trim());
  if (status === 'failed' && !(await card.locator('.step-error').count())) fail(`a failed action shows no reason: ${lines.join(' | ')}`);
  step(`  ${status}: ${lines.join(' | ')}${status === 'failed' ? ` (${await card.locator('.step-error').first().textContent()})` : ''}`);
  await card.scrollIntoViewIfNeeded();
  await shot(page, 'proposal-confirmed');

  step('  the audit view lists the confirm and the chain is ok');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await visit(page, 'Audit', 'audit', async () => {
    await page.locator(`tr[data-action-id="${id}"]`).first().waitFor({ timeout: 10_000 }).catch(() => fail(`no audit row for action ${id}`));
    await page.locator('[data-verdict]').waitFor();
  });
  const verdict = await page.locator('[data-verdict]').getAttribute('data-verdict');
  if (verdict !== 'ok') fail(`the audit chain verdict is ${verdict}: ${await page.locator('[data-verdict]').textContent()}`);

  step('  a second confirm is refused with 409');
  const again = await page.evaluate(async (actionId) => {
    const res = await fetch(`/api/actions/${encodeURIComponent(actionId)}/confirm`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    return { status: res.status, body: await res.json().catch(() => null) };
  }, id);
  if (again.status !== 409) fail(`a second confirm answered ${again.status}: ${JSON.stringify(again.body)}`);
  step(`  409: ${again.body?.detail}`);
}

/** A key as the cockpit labels it: `#601`, or a repository-qualified key as sent. */
const keyLabel = (key) => (key.includes('#') ? key : `#${key}`);

async function agentConsole(page, server) {
  step('agents: a live console, listed in the Agents view and rendered in the drawer by xterm.js');
  // The stuck scenario's stalled coder keeps its terminal open for as long as the demo runs.
  const deadline = Date.now() + 30_000;
  let agents;
  for (;;) {
    const live = await (await fetch(`${server.api}/api/live-agents`)).json();
    if (!live.enabled) fail(`agent consoles are off in the demo: ${live.detail}`);
    agents = live.agents;
    if (agents.length) break;
    if (Date.now() > deadline) fail('no work item had a live agent console within 30 s');
    await page.waitForTimeout(250);
  }
  // The oldest run is the stalled one: it will not end while the page watches.
  const agent = agents[agents.length - 1];
  step(`  #${agent.correlation_key}: ${agent.service} task ${agent.task_id}`);
  await visit(page, 'Agents', 'agents', () => page.locator(`[data-agent="${agent.correlation_key}"]`).waitFor({ timeout: 10_000 }));
  await page.getByRole('button', { name: `Watch the console of ${keyLabel(agent.correlation_key)}` }).click();
  const drawer = page.getByRole('dialog');
  const screen = drawer.getByRole('region', { name: `Agent console of ${keyLabel(agent.correlation_key)}` });
  const rows = screen.locator('.xterm-rows');
  await rows.waitFor({ timeout: 10_000 }).catch(() => fail('the console panel shows no terminal'));
  // The console opens with a banner naming its task, then prints timestamped lines; both
  // must come through the relay and be drawn by the terminal.
  const drawn = async (test, what) => {
    const until = Date.now() + 10_000;
    for (;;) {
      const text = await rows.textContent();
      if (test(text)) return text;
      if (Date.now() > until) fail(`the terminal never showed ${what}; it shows: ${JSON.stringify(text.slice(0, 400))} (${await drawer.locator('.console-status').textContent()})`);
      await page.waitForTimeout(100);
    }
  };
  await drawn((t) => t.includes('agent console') && t.includes(agent.task_id), `the banner naming ${agent.task_id}`);
  const text = await drawn((t) => /\d\d:\d\d:\d\d .+/.test(t), 'a line of agent output');
  if (text.includes('\u001b[') || text.includes('[32m')) fail('the terminal shows raw escape codes instead of colours');
  const state = await drawer.locator('[data-console-state]').getAttribute('data-console-state');
  if (state !== 'live') fail(`the console reads ${state}: ${await drawer.locator('.console-status').textContent()}`);
  await axe(page, 'agent console');
  await shot(page, 'agent-console');
  await page.keyboard.press('Escape');
  await drawer.waitFor({ state: 'detached' });
  if (new URL(page.url()).searchParams.has('console')) fail('closing the drawer left the console open in the URL');
}

async function copilot(page) {
  step('the copilot panel opens with Ctrl-J and answers (or says how to configure a model)');
  await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Mission Control' }).click();
  await page.keyboard.press('Control+J');
  const panel = page.getByRole('complementary', { name: 'Copilot' });
  await panel.waitFor();
  const box = panel.getByLabel('Message to the copilot');
  if (!(await box.evaluate((el) => el === document.activeElement))) fail('opening the copilot does not focus its message box');
  await box.fill('Where is the oldest stuck item, and why?');
  await page.keyboard.press('Enter');
  await panel.locator('[data-unconfigured], [data-role="copilot"], [data-role="error"]').first().waitFor({ timeout: 60_000 });
  if (await panel.locator('[data-role="error"]').count()) fail(`the copilot failed: ${await panel.locator('[data-role="error"]').textContent()}`);
  const hint = panel.locator('[data-unconfigured]');
  if (await hint.count()) {
    if (!/CFACTORY_COPILOT_PROVIDER/.test(await hint.textContent())) fail(`the 503 hint does not say how to configure a model: ${await hint.textContent()}`);
    step('  no model configured: the panel shows how to configure one');
  } else {
    step('  the copilot answered');
  }
  await axe(page, 'copilot');
  await shot(page, 'copilot');
  await page.keyboard.press('Escape');
  await panel.waitFor({ state: 'hidden' });
  if ((await page.getByRole('button', { name: /^Copilot/ }).getAttribute('aria-expanded')) !== 'false') fail('the copilot toggle does not say the panel is closed');
}

/** A streamed copilot answer, played by the browser's router (the demo runs no model):
 * text shows as it arrives, a tool call starts and ends, the proposal is a card; then a
 * turn that never answers is stopped with Stop. */
async function copilotStream(page) {
  step('the copilot panel reads a streamed answer and stops a turn with Stop');
  const sse = (event, data) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  const answer = 'Nothing is stuck right now; the oldest item finished its tests.';
  const body =
    ': keep-alive\n\n' +
    sse('start', { conversation_id: 'conv_e2e', model: 'anthropic:claude-sonnet-4-6' }) +
    sse('text', { step: 1, delta: 'Checking ' }) +
    sse('text', { step: 1, delta: 'what needs you.' }) +
    sse('tool_start', { id: 'tu_1', name: 'needs_you' }) +
    sse('tool_end', { id: 'tu_1', name: 'needs_you', ok: true, summary: 'answered 40 bytes in 3 ms' }) +
    answer.split(' ').map((w, i, all) => sse('text', { step: 2, delta: i < all.length - 1 ? `${w} ` : w })).join('') +
    sse('done', {
      turn: { conversation_id: 'conv_e2e', answer, trace: [{ id: 'tu_1', name: 'needs_you', input: {}, output: { count: 0 }, is_error: false, ms: 3, at: new Date().toISOString() }], proposals: [], end: 'answered', steps: 2, usage: { input_tokens: 900, output_tokens: 60 } },
      cost_usd: 0.0036,
    });
  let requests = 0;
  let hang = false;
  await page.route('**/api/copilot/chat', async (route) => {
    requests += 1;
    if (route.request().headers().accept !== 'text/event-stream') return route.fulfill({ status: 400, body: 'the panel must ask for a stream' });
    if (hang) return; // Never answered: the turn only ends when the panel stops it.
    await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body });
  });
  try {
    await page.keyboard.press('Control+J');
    const panel = page.getByRole('complementary', { name: 'Copilot' });
    await panel.waitFor();
    const box = panel.getByLabel('Message to the copilot');
    await box.fill('Is anything stuck?');
    await page.keyboard.press('Enter');
    const turn = panel.locator('[data-role="copilot"][data-status="done"]').last();
    await turn.waitFor({ timeout: 10_000 }).catch(() => fail('the streamed answer never finished'));
    if ((await turn.locator('.turn-text').textContent()) !== answer) fail(`the streamed answer reads ${await turn.locator('.turn-text').textContent()}`);
    if (!/Tool trace: 1 call/.test(await turn.textContent())) fail('the finished streamed answer shows no tool trace');

    hang = true;
    await box.fill('And the slowest one?');
    await page.keyboard.press('Enter');
    const stop = panel.getByRole('button', { name: 'Stop' });
    await stop.waitFor({ timeout: 5000 }).catch(() => fail('no Stop button while the copilot works'));
    await stop.click();
    await panel.locator('[data-role="copilot"][data-status="stopped"]').waitFor({ timeout: 5000 }).catch(() => fail('Stop did not stop the turn'));
    await panel.getByRole('button', { name: 'Send' }).waitFor();
    if (requests !== 2) fail(`the panel sent ${requests} chat requests, not 2`);
    step('  streamed, then stopped');
    await axe(page, 'copilot-stream');
    await shot(page, 'copilot-stream');
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden' });
  } finally {
    await page.unroute('**/api/copilot/chat');
  }
}

async function openMode(browser, data) {
  const server = await startServer({ dataDir: data.dir, args: ['--speed', '10'] });
  try {
    step(`open mode: cockpit on ${server.ui}, API on ${server.api}`);
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    watchPage(page, 'open mode');

    await page.goto(`${server.ui}/pipeline`);
    await page.getByRole('heading', { name: 'Pipeline' }).waitFor();
    await page.locator('.pill[data-status="live"]').waitFor({ timeout: 10_000 });

    step('the board fills from the simulator');
    const deadline = Date.now() + 60_000;
    for (;;) {
      const api = await (await fetch(`${server.api}/api/workitems?limit=1`)).json();
      const shown = await boardTotal(page);
      if (api.count >= 9 && shown === api.count) {
        step(`  board shows ${shown} work items, as the API does`);
        break;
      }
      if (Date.now() > deadline) fail(`the board shows ${shown} work items, the API ${api.count}, after 60 s`);
      await page.waitForTimeout(250);
    }

    step('an unproven stage is amber and says so, never green');
    const unproven = page.locator('.card .chip', { hasText: 'unproven' }).first();
    await unproven.waitFor({ timeout: 30_000 }).catch(() => fail('no chip says "unproven" (the simulator plays an unproven scenario)'));
    for (const chip of await page.locator('.card .chip', { hasText: 'unproven' }).all()) {
      const tone = await chip.getAttribute('data-tone');
      const color = await chip.evaluate((el) => getComputedStyle(el).color);
      if (tone !== 'amber' || color === GREEN) fail(`an unproven chip reads tone ${tone}, colour ${color}`);
    }

    step('an event ingested now appears on the board without a reload');
    const key = String(90_000 + Math.floor(Math.random() * 9_000));
    const marker = await page.evaluate(() => (window.__e2eMarker = Math.random()));
    await ingest(server.api, {
      id: randomUUID(),
      specversion: '1.0',
      source: '/aifactory',
      type: 'io.factory.aifactory.completion',
      time: new Date(Date.now() + 60_000).toISOString(),
      correlation_key: key,
      service: 'aifactory',
      task_id: `e2e:${key}`,
      status: 'in_progress',
      phase: 'coding',
      title: 'Ingested by the e2e run',
    });
    await page
      .locator('.card .key', { hasText: `#${key}` })
      .waitFor({ timeout: LIVE_LIMIT_MS })
      .catch(() => fail(`work item ${key} did not reach the board within ${LIVE_LIMIT_MS} ms of its ingest`));
    if ((await page.evaluate(() => window.__e2eMarker)) !== marker) fail('the page reloaded while waiting for the live event');
    await axe(page, 'pipeline');
    await shot(page, 'pipeline');

    step('the drawer shows the chain, timeline and execution graph');
    await page.locator('[data-stage="test"] .card').first().click();
    const drawer = page.getByRole('dialog');
    await drawer.waitFor();
    const chain = drawer.getByRole('list', { name: 'Chain from plan to test' });
    const links = await chain.locator('li').allTextContents();
    if (links.length !== 5) fail(`the chain lists ${links.length} links, not 5`);
    const known = await chain.locator('li:not(.chain-missing)').count();
    if (known < 3) fail(`only ${known} chain links are known: ${links.join(' | ')}`);
    await drawer.getByRole('list', { name: 'Timeline, oldest first' }).locator('li').first().waitFor({ timeout: 10_000 });
    await drawer.locator('[data-node]').first().waitFor({ timeout: 15_000 }).catch(async () => fail(`no execution graph: ${await drawer.locator('section', { hasText: 'Execution graph' }).textContent()}`));
    const url = new URL(page.url());
    if (!url.searchParams.get('task')) fail(`the drawer is not deep-linked: ${page.url()}`);
    await axe(page, 'drawer');
    await shot(page, 'drawer');

    step('the drawer opens from a deep link');
    const deep = await context.newPage();
    watchPage(deep, 'deep link');
    await deep.goto(`${server.ui}/?task=${encodeURIComponent(url.searchParams.get('task'))}`);
    await deep.getByRole('dialog').getByRole('list', { name: 'Chain from plan to test' }).waitFor();
    await deep.close();
    await page.keyboard.press('Escape');
    await drawer.waitFor({ state: 'detached' });

    step('every view renders; axe finds no serious or critical violation');
    await visit(page, 'Mission Control', 'mission-control', async () => {
      await page.locator('.tile-value').first().waitFor();
      await page.getByRole('list', { name: 'Latest events, newest first' }).waitFor();
      await page.getByRole('list', { name: 'Anomalies' }).waitFor();
      await page.getByRole('list', { name: 'Insights' }).waitFor();
    });
    await visit(page, 'Needs you', 'needs-you', () => page.getByRole('list', { name: 'Work items waiting on a person' }).waitFor());
    await visit(page, 'Active tasks', 'active-tasks', () => page.getByRole('heading', { name: 'Active tasks' }).waitFor());
    await visit(page, 'Tokens', 'tokens', async () => {
      await page.getByRole('table', { name: 'By service' }).waitFor();
      await page.locator('.chart canvas').first().waitFor();
    });

    step('the services page shows each service health');
    await visit(page, 'Services', 'services', () => page.locator('[data-health]').nth(2).waitFor());
    const health = await page.locator('[data-health]').allTextContents();
    if (health.length !== 3 || !health.includes('online')) fail(`services health reads ${JSON.stringify(health)}`);
    if ((await page.getByRole('button', { name: /^Edit the URL/ }).count()) !== 3) fail('open mode (write scope) shows no URL edit controls');

    step('the command palette finds a work item');
    await page.keyboard.press('Control+K');
    const palette = page.getByRole('dialog', { name: 'Command palette' });
    await palette.getByRole('combobox').fill(key);
    await palette.getByRole('option', { name: new RegExp(`#${key}`) }).waitFor({ timeout: 5000 });
    await axe(page, 'palette');
    await shot(page, 'palette');
    await page.keyboard.press('Enter');
    await page.getByRole('dialog', { name: new RegExp(`#${key}`) }).waitFor();
    await page.keyboard.press('Escape');

    // Before the actions: a recover proposal may stop the stalled coder whose console it watches.
    await agentConsole(page, server);
    await actions(page, server);
    await copilot(page);
    await copilotStream(page);

    await context.close();
  } catch (e) {
    await current?.screenshot({ path: join(shots, 'failure.png') }).catch(() => {});
    console.error(`e2e: server log tail:\n${server.log().split('\n').slice(-30).join('\n')}`);
    throw e;
  } finally {
    await server.stop();
  }
}

async function withKeys(browser, data) {
  step('keys: a second run on the same store, with keys made before it starts');
  // The demo keeps its own store in demo/ under the data dir; --keep carries it (and these
  // keys) into the second run.
  const demoStore = join(data.dir, 'demo');
  const readOnly = createKey(demoStore, 'read', 'e2e-read');
  const writer = createKey(demoStore, 'read,write', 'e2e-write');
  const admin = createKey(demoStore, 'admin', 'e2e-admin');
  const webhook = createKey(demoStore, 'ingest', 'e2e-webhook');
  const server = await startServer({ dataDir: data.dir, args: ['--speed', '10', '--keep', '--webhook-token', webhook] });
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    watchPage(page, 'keys');
    await page.goto(server.ui);
    const field = page.getByLabel('API key');
    await field.waitFor();
    await axe(page, 'sign-in');
    await shot(page, 'sign-in');

    step('a wrong key is refused');
    await field.fill('cfk_not_a_real_key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    if (!/not accepted/.test(await alert.textContent())) fail(`a wrong key shows: ${await alert.textContent()}`);
    if ((await context.cookies()).some((c) => c.name === 'cfactory_session')) fail('a wrong key got a session cookie');
    await shot(page, 'sign-in-refused');

    const signIn = async (key) => {
      await field.fill(key);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('button', { name: 'Sign out' }).waitFor();
      await page.locator('.pill[data-status="live"]').waitFor({ timeout: 10_000 }).catch(() => fail('the live socket did not connect with the session cookie'));
    };
    const signOut = async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await field.waitFor();
    };

    step('a read-only key signs in and sees no edit controls');
    await signIn(readOnly);
    const cookie = (await context.cookies()).find((c) => c.name === 'cfactory_session');
    if (!cookie || !cookie.httpOnly || cookie.sameSite !== 'Strict') fail(`session cookie is ${JSON.stringify(cookie)}`);
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    if (stored.includes('cfk_') || page.url().includes('cfk_')) fail('the key was kept in storage or the URL');
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Services' }).click();
    await page.locator('[data-health]').first().waitFor();
    if (await page.getByRole('button', { name: /^Edit the URL/ }).count()) fail('a read-only user sees URL edit controls');
    await signOut();

    step('a write key may check the services now but not re-point them');
    await signIn(writer);
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Services' }).click();
    await page.getByRole('button', { name: 'Check now' }).waitFor();
    if (await page.getByRole('button', { name: /^Edit the URL/ }).count()) fail('a write-only user sees URL edit controls');
    await signOut();

    step('an admin key sees the URL edit controls');
    await signIn(admin);
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Services' }).click();
    await page.getByRole('button', { name: /^Edit the URL/ }).first().waitFor();
    await signOut();
    await context.close();

    await people(browser, { server, store: demoStore, adminKey: admin, step, axe, shot, watchPage });
  } catch (e) {
    await current?.screenshot({ path: join(shots, 'failure.png') }).catch(() => {});
    console.error(`e2e: server log tail:\n${server.log().split('\n').slice(-30).join('\n')}`);
    throw e;
  } finally {
    await server.stop();
  }
}

async function main() {
  preflight();
  const browser = await launchBrowser();
  const data = tempDataDir();
  try {
    await openMode(browser, data);
    await withKeys(browser, data);
    await singleSignOn(browser, { step, axe, shot, watchPage });
  } finally {
    await browser.close();
    data.cleanup();
  }
  if (pageErrors.length) fail(`the page threw:\n  ${pageErrors.join('\n  ')}`);
  if (axeFindings.length) fail(`axe-core found ${axeFindings.length} serious or critical violation(s):\n  ${axeFindings.join('\n  ')}`);
  console.log(`e2e: PASS (screenshots in ${shots})`);
}

main().catch((e) => {
  if (!process.exitCode) console.error(`e2e: FAIL: ${e?.stack ?? e}`);
  process.exitCode = 1;
});
