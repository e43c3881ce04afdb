// Test doubles for component tests: WorkItems shaped like the server's, a fetch that
// answers by path, and a WebSocket the test drives by hand.

import { render } from '@testing-library/react';
import type { ReactNode } from 'react';
import { vi } from 'vitest';
import type { PreparedAction, Session, Stage, StageName, WorkItem } from './api';
import { LiveContext, LiveStore } from './live';
import { SessionContext } from './session';

export function stage(overrides: Partial<Stage> = {}): Stage {
  return {
    task_id: 't-1',
    status: 'in_progress',
    status_class: 'running',
    phase: 'coding',
    at: '2026-11-01T10:00:00Z',
    proof: 'not_applicable',
    usage: { input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0, notional_cost_usd: 0 },
    started_at: '2026-11-01T09:00:00Z',
    received_at: '2026-11-01T10:00:00Z',
    ...overrides,
  };
}

export function workItem(key: string, stages: Partial<Record<StageName, Stage>> = {}, overrides: Partial<WorkItem> = {}): WorkItem {
  const active = (['test', 'code', 'plan'] as const).find((s) => stages[s]) ?? null;
  return {
    correlation_key: key,
    aliases: [],
    title: `Item ${key}`,
    project: 'acme/api',
    links: { session_id: null, issue_number: null, aifactory_task_ids: [], branch: null, pr_number: null, tfactory_spec_ids: [], repo: null, emitted_issues: [] },
    stages: { plan: stages.plan ?? null, code: stages.code ?? null, test: stages.test ?? null },
    usage_total: { input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0, notional_cost_usd: 0 },
    usage_by_task: [],
    event_count: 1,
    handbacks: 0,
    flags: { missing_event_id: 0, correlation_conflict_count: 0, correlation_conflicts: [] },
    created_at: '2026-11-01T09:00:00Z',
    updated_at: '2026-11-01T10:00:00Z',
    liveness: { active_stage: active, last_activity_age_seconds: 10, stalled: false },
    ...overrides,
  };
}

type Answer = unknown | ((url: URL, init: RequestInit | undefined) => Response | Promise<Response>);

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' } });
}

/**
 * Stubs `fetch`: each request is answered by the route whose key matches
 * `METHOD /path` or `/path` (query ignored); unknown paths answer 404.
 */
export function mockFetch(routes: Record<string, Answer>) {
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://localhost');
    const method = init?.method ?? 'GET';
    const answer = routes[`${method} ${url.pathname}`] ?? routes[url.pathname];
    if (answer === undefined) return json({ title: 'Not found', status: 404, detail: 'no route' }, 404);
    return typeof answer === 'function' ? answer(url, init) : json(answer);
  });
  vi.stubGlobal('fetch', fn);
  return fn;
}

/** A WebSocket the test opens, feeds and closes; every instance is kept in `sockets`. */
export class FakeSocket {
  static sockets: FakeSocket[] = [];
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  closed = false;

  constructor(readonly url: string) {
    FakeSocket.sockets.push(this);
  }

  send(frame: unknown): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.();
  }

  static install(): void {
    FakeSocket.sockets = [];
    vi.stubGlobal('WebSocket', FakeSocket);
  }

  static last(): FakeSocket {
    const s = FakeSocket.sockets[FakeSocket.sockets.length - 1];
    if (!s) throw new Error('no socket opened');
    return s;
  }
}

export const openSession: Session = { tenant: 'default', scopes: ['read', 'write', 'ingest', 'approve', 'metrics', 'admin'], open_mode: true };

/** Renders `ui` inside the providers views expect. */
export function renderWith(ui: ReactNode, { store = new LiveStore(0), session = openSession } = {}) {
  const result = render(
    <SessionContext.Provider value={session}>
      <LiveContext.Provider value={store}>{ui}</LiveContext.Provider>
    </SessionContext.Provider>,
  );
  return { ...result, store };
}

/** A prepared action shaped like the server's, expiring ten minutes from now. */
export function preparedAction(overrides: Partial<PreparedAction> = {}): PreparedAction {
  const now = Date.now();
  return {
    id: 'act_01',
    kind: 'approve_gate',
    correlation_key: '185',
    target_service: 'pfactory',
    method: 'POST',
    endpoint: '/api/sessions/011-dark/approve',
    payload: { approver: '{{approver}}', approved_at: '{{confirmed_at}}' },
    follow_ups: [],
    rationale: 'The plan passed its review gates and waits for approval.',
    status: 'prepared',
    created_at: new Date(now).toISOString(),
    expires_at: new Date(now + 10 * 60_000).toISOString(),
    note: null,
    proposed_by: 'local',
    tenant: 'default',
    results: [],
    ...overrides,
  };
}

/** A promise the test settles by hand. */
export function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
