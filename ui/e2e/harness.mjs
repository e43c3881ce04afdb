// Shared by the e2e run and the benchmark: finds the built UI and the `cfactory` binary,
// starts `cfactory demo` or `serve` on free ports with a throw-away data directory, and launches the
// system's Chromium through playwright-core (never a downloaded browser).

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const UI_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = resolve(UI_DIR, '..');
export const DIST = join(UI_DIR, 'dist');
export const BIN = resolve(process.env.CFACTORY_BIN ?? join(REPO, 'target/debug/cfactory'));
export const CHROMIUM = process.env.CFACTORY_CHROMIUM ?? '/usr/bin/chromium';

/** Stops the run with a message saying what to do. */
export function fail(message) {
  console.error(`e2e: FAIL: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
}

/** Checks that the UI is built and the binary and browser exist. */
export function preflight() {
  if (!existsSync(join(DIST, 'index.html'))) fail(`no built UI at ${DIST}: run \`npm run build\` first`);
  if (!existsSync(BIN)) fail(`no cfactory binary at ${BIN}: run \`cargo build -p cfactory-server\` or set CFACTORY_BIN`);
  if (!existsSync(CHROMIUM)) fail(`no Chromium at ${CHROMIUM}: install the Debian package \`chromium\` (or set CFACTORY_CHROMIUM)`);
}

/** A fresh data directory, removed by `cleanup()`. */
export function tempDataDir() {
  const dir = mkdtempSync(join(tmpdir(), 'cfactory-e2e-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const running = new Set();
// Whatever happens to this script, no server outlives it.
process.on('exit', () => running.forEach((p) => p.kill('SIGKILL')));
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    running.forEach((p) => p.kill('SIGKILL'));
    process.exit(130);
  });
}

/**
 * Starts `cfactory demo` (or `serve`) with the UI served from ui/dist; resolves once both
 * addresses are printed. `args` are extra flags (speed, scenario, webhook token…).
 */
export function startServer({ command = 'demo', dataDir, args = [], env = {} }) {
  // Free ports unless `args` name the addresses (a cockpit whose address must be known
  // before it starts, as single sign-on's callback is).
  const addr = (flag) => (args.includes(flag) ? [] : [flag, '127.0.0.1:0']);
  const proc = spawn(
    BIN,
    [command, '--data-dir', dataDir, ...addr('--api-addr'), ...addr('--ui-addr'), ...args],
    { env: { ...process.env, CFACTORY_UI_DIR: DIST, CFACTORY_LOG: process.env.CFACTORY_LOG ?? 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(proc);
  let log = '';
  const keep = (chunk) => {
    log = (log + String(chunk)).slice(-20_000);
  };
  proc.stdout.on('data', keep);

  const stop = () =>
    new Promise((done) => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        running.delete(proc);
        return done();
      }
      const hard = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.once('exit', () => {
        clearTimeout(hard);
        running.delete(proc);
        done();
      });
      proc.kill('SIGTERM');
    });

  return new Promise((ok, no) => {
    let api = null;
    let ui = null;
    const timer = setTimeout(() => no(new Error(`cfactory ${command} did not print its addresses within 60 s:\n${log}`)), 60_000);
    // Output arrives in arbitrary chunks: only whole lines are read for the addresses.
    let partial = '';
    proc.stderr.on('data', (chunk) => {
      keep(chunk);
      const lines = (partial + String(chunk)).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        api ??= /API listening on (http:\/\/\S+)/.exec(line)?.[1] ?? null;
        ui ??= /cockpit listening on (http:\/\/\S+)/.exec(line)?.[1] ?? null;
      }
      if (api && ui) {
        clearTimeout(timer);
        ok({ api, ui, stop, log: () => log });
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      running.delete(proc);
      if (!(api && ui)) no(new Error(`cfactory ${command} exited (${code ?? signal}) before listening:\n${log}`));
    });
  });
}

/** `cfactory keys create` against the same store; returns the printed key. */
export function createKey(dataDir, scopes, name) {
  const out = execFileSync(BIN, ['keys', 'create', '--data-dir', dataDir, '--scopes', scopes, '--name', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const key = /cfk_\S+/.exec(out)?.[0];
  if (!key) fail(`cfactory keys create printed no key: ${out}`);
  return key;
}

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}

/** The screenshot folder, target/ui-shots at the repository root. */
export function shotsDir() {
  const dir = join(REPO, 'target', 'ui-shots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** POSTs events (one or an array) to the ingress. */
export async function ingest(api, events, headers = {}) {
  const res = await fetch(`${api}/api/events/completion`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(events),
  });
  if (!res.ok) fail(`ingest answered ${res.status}: ${await res.text()}`);
  return res.json();
}
