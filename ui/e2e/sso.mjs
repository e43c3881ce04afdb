// Single sign-on in the browser: a real OpenID provider (the `oidc-provider` package, run
// from crates/server/tests/oidc-provider, whose packages `cargo xtask test` installs) and
// `cfactory serve` configured for it. A person clicks "Sign in with SSO", signs in on the
// provider's own login page and lands back in the cockpit, signed in with the session
// cookie; a person whose groups map to nothing gets the page that says so.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { REPO, fail, startServer, tempDataDir } from './harness.mjs';

const FIXTURE = join(REPO, 'crates/server/tests/oidc-provider');

/** A free loopback port: the provider must know the cockpit's callback before either starts. */
function freePort() {
  return new Promise((done, no) => {
    const probe = createServer();
    probe.once('error', no);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
  });
}

/** Starts the fixture's real provider for `redirect`; resolves with its issuer and a stop. */
function startProvider(redirect) {
  if (!existsSync(join(FIXTURE, 'node_modules/oidc-provider'))) {
    fail(`no packages in ${FIXTURE}: run \`npm ci\` there (cargo xtask test does)`);
  }
  const proc = spawn(process.execPath, ['provider.mjs', '--redirect', redirect], { cwd: FIXTURE, stdio: ['pipe', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (c) => (log = (log + String(c)).slice(-4000)));
  process.on('exit', () => proc.kill('SIGKILL'));
  const stop = () =>
    new Promise((done) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return done();
      proc.once('exit', () => done());
      proc.kill('SIGTERM');
    });
  return new Promise((ok, no) => {
    const timer = setTimeout(() => no(new Error(`the OpenID provider did not start within 30 s:\n${log}`)), 30_000);
    let out = '';
    proc.stdout.on('data', (chunk) => {
      out += String(chunk);
      const line = out.split('\n')[0];
      if (!out.includes('\n')) return;
      clearTimeout(timer);
      ok({ issuer: JSON.parse(line).issuer, stop });
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      no(new Error(`the OpenID provider exited (${code}) before it listened:\n${log}`));
    });
  });
}

/** Signs in on the provider's development login page as `account`. */
async function providerLogin(page, issuer, account) {
  await page.waitForURL((url) => url.href.startsWith(issuer), { timeout: 15_000 });
  await page.locator('input[name="login"]').fill(account);
  await page.locator('input[name="password"]').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
}

/**
 * The single sign-on run. `helpers` are the e2e run's own: `step`, `axe`, `shot` and
 * `watchPage`, so this part reports, checks and pictures like the rest.
 */
export async function singleSignOn(browser, { step, axe, shot, watchPage }) {
  step('single sign-on: a real OpenID provider and a cockpit configured for it');
  const data = tempDataDir();
  const uiPort = await freePort();
  const cockpit = `http://127.0.0.1:${uiPort}`;
  const provider = await startProvider(`${cockpit}/api/auth/oidc/callback`);
  let server = null;
  try {
    server = await startServer({
      command: 'serve',
      dataDir: data.dir,
      args: [
        '--ui-addr', `127.0.0.1:${uiPort}`,
        '--public-url', cockpit,
        '--oidc-issuer', provider.issuer,
        '--oidc-client-id', 'cfactory',
        '--oidc-client-secret', 'cfactory-test-secret',
        '--oidc-scopes', 'email profile groups',
        '--oidc-role', 'cfactory-admins=read+write+approve+admin',
        '--poll-interval-seconds', '0',
      ],
    });
    step(`  provider ${provider.issuer}, cockpit ${server.ui}`);

    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    watchPage(page, 'sso');
    await page.goto(`${server.ui}/pipeline`);
    const sso = page.getByRole('link', { name: 'Sign in with SSO' });
    await sso.waitFor({ timeout: 10_000 }).catch(() => fail('the sign-in page offers no "Sign in with SSO" while single sign-on is configured'));
    if (!(await page.getByLabel('API key').count())) fail('key sign-in disappeared beside single sign-on');
    await axe(page, 'sign-in with SSO');
    await shot(page, 'sign-in-sso');

    step('  a person signs in on the provider\'s page and comes back signed in');
    await sso.click();
    await providerLogin(page, provider.issuer, 'alice');
    await page.waitForURL(`${server.ui}/pipeline`, { timeout: 15_000 }).catch(() => fail(`the sign-in did not come back to the page it started from: ${page.url()}`));
    await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: 10_000 });
    await page.getByText('alice@example.test').waitFor().catch(() => fail('the cockpit does not name the person signed in'));
    await page.getByRole('heading', { name: 'Pipeline' }).waitFor();
    await page.locator('.pill[data-status="live"]').waitFor({ timeout: 10_000 }).catch(() => fail('the live socket did not connect with the single sign-on session'));
    const cookie = (await context.cookies()).find((c) => c.name === 'cfactory_session');
    if (!cookie || !cookie.httpOnly || cookie.sameSite !== 'Strict') fail(`the session cookie is ${JSON.stringify(cookie)}`);
    const me = await page.evaluate(async () => (await fetch('/api/session')).json());
    if (!me.scopes.includes('admin') || me.user?.name !== 'alice@example.test') fail(`the session reads ${JSON.stringify(me)}`);
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Services' }).click();
    await page.getByRole('button', { name: /^Edit the URL/ }).first().waitFor().catch(() => fail('an admin signed in by SSO sees no URL edit controls'));
    await axe(page, 'signed in with SSO');
    await shot(page, 'signed-in-sso');

    step('  signing out ends the session');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in with SSO' }).waitFor();
    const after = await page.evaluate(async () => (await fetch('/api/session')).status);
    if (after !== 401) fail(`after signing out /api/session answers ${after}`);
    await context.close();

    step('  a person whose groups grant nothing is refused with a page that says so');
    const other = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const refused = await other.newPage();
    watchPage(refused, 'sso refused');
    await refused.goto(server.ui);
    await refused.getByRole('link', { name: 'Sign in with SSO' }).click();
    await providerLogin(refused, provider.issuer, 'carol');
    await refused.waitForURL((url) => url.href.startsWith(`${server.ui}/api/auth/oidc/callback`), { timeout: 15_000 });
    await refused.getByRole('heading', { name: 'Your groups grant no access in CFactory' }).waitFor().catch(async () => fail(`the refusal page reads: ${await refused.locator('body').textContent()}`));
    const text = await refused.locator('body').textContent();
    if (!text.includes('marketing') || !text.includes('`groups` claim')) fail(`the refusal page does not name the groups and the claim: ${text}`);
    if ((await other.cookies()).some((c) => c.name === 'cfactory_session')) fail('a refused person got a session cookie');
    await axe(refused, 'sso refused');
    await shot(refused, 'sso-refused');
    await other.close();
  } finally {
    await server?.stop();
    await provider.stop();
    data.cleanup();
  }
}
