// The cockpit's typed view of the CFactory API (docs/api.md). Types mirror the server's
// JSON exactly; every call goes to the page's own origin, so the session cookie rides
// along and no key ever appears in a URL.

export type StageName = 'plan' | 'code' | 'test';
export type ServiceName = 'pfactory' | 'aifactory' | 'tfactory' | 'cfactory';
export type StatusClass = 'failed' | 'done' | 'review' | 'queued' | 'running' | 'stuck';
export type Proof = 'proven' | 'unproven' | 'not_applicable';
export type Scope = 'read' | 'write' | 'ingest' | 'admin';

export const STAGES: readonly StageName[] = ['plan', 'code', 'test'];
export const STATUS_CLASSES: readonly StatusClass[] = ['running', 'review', 'queued', 'stuck', 'failed', 'done'];

/** The service that owns each stage. */
export const STAGE_SERVICE: Record<StageName, ServiceName> = {
  plan: 'pfactory',
  code: 'aifactory',
  test: 'tfactory',
};

export interface UsageAmounts {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  /** Metered spend only. */
  cost_usd: number;
  /**
   * Dollars reported by subscription or local workers: shown, never part of spend.
   * Older servers omit it.
   */
  notional_cost_usd?: number;
}

export interface InjectionScan {
  verdict: string;
  reason?: string;
  scanner?: string;
  sources_scanned?: string[];
}

/** One verification level's result, as TFactory reports it. */
export interface VerificationLevel {
  level: string;
  status: string;
  reason?: string | null;
}

/** The level a test run set out to verify and the level it reached (TFactory). */
export interface Verification {
  target_level?: string | null;
  achieved_level?: string | null;
  claim?: string | null;
  levels?: VerificationLevel[];
}

export interface Stage {
  task_id: string;
  status: string;
  status_class: StatusClass;
  phase: string;
  at: string;
  proof: Proof;
  usage: UsageAmounts;
  event_id?: string;
  injection_scan?: InjectionScan;
  /** TFactory's verdict: `success`, `failure` (then `status_class: "failed"`) or `human_review` (`"review"`). */
  outcome?: string;
  halt_reason?: string;
  /** Why the task waits in review, as its service says (AIFactory's review_reason). */
  review_reason?: string;
  verification?: Verification;
  started_at: string;
  received_at: string;
}

export interface Links {
  session_id: string | null;
  /** The issue's repository (`owner/name`); older servers omit it. */
  repo?: string | null;
  issue_number: number | null;
  /** Epic and child issues PFactory created for this unit (aliases of the item); older servers omit it. */
  emitted_issues?: number[];
  aifactory_task_ids: string[];
  branch: string | null;
  pr_number: number | null;
  tfactory_spec_ids: string[];
}

export interface TaskUsage {
  service: ServiceName;
  task_id: string;
  model: string | null;
  at: string;
  current: UsageAmounts;
  earlier_runs: UsageAmounts;
  runs: number;
  phase?: string | null;
}

export interface Liveness {
  active_stage: StageName | null;
  last_activity_age_seconds: number | null;
  stalled: boolean;
}

export interface WorkItem {
  /** The key as sent: a bare number (`7150`) or repository-qualified (`acme/shop#7150`). */
  correlation_key: string;
  aliases: string[];
  title: string | null;
  project: string | null;
  links: Links;
  stages: Record<StageName, Stage | null>;
  usage_total: UsageAmounts;
  usage_by_task?: TaskUsage[];
  event_count: number;
  handbacks?: number;
  created_at: string;
  updated_at: string;
  liveness: Liveness;
}

export interface WorkItemPage {
  count: number;
  items: WorkItem[];
  next_cursor: string | null;
  stalled_count: number;
}

export interface TimelineEvent {
  seq: number;
  id: string | null;
  service: ServiceName;
  task_id: string;
  status: string;
  time: string;
  received_at: string;
}

export interface Timeline {
  correlation_key: string;
  event_count: number;
  span_seconds: number;
  next_cursor: string | null;
  events: TimelineEvent[];
}

export interface ProcessNode {
  id: string;
  label: string;
  status: string;
  started_at: string | null;
  finished_at: string | null;
  deps: string[];
}

export type ProcessAnswer =
  | { available: true; service: ServiceName; stage: StageName; task_id: string; nodes: ProcessNode[] }
  | { available: false; reason: string };

export type HealthStatus = 'online' | 'degraded' | 'unauthorized' | 'offline' | 'error' | 'unknown';

/** One live feed's state as its follower last saw it. */
export type FeedState = { state: 'connected' } | { state: 'unauthorized' | 'disconnected'; detail: string };

export interface ServiceView {
  service: ServiceName;
  url: string | null;
  configured: boolean;
  health: {
    service: ServiceName;
    status: HealthStatus;
    detail: string | null;
    latency_ms: number | null;
    checked_at: string;
  };
  /** Each live feed by route (older servers omit it). */
  feeds?: Record<string, FeedState>;
}

export interface Session {
  tenant: string;
  scopes: Scope[];
  open_mode: boolean;
}

export interface DurationStats {
  p50_seconds: number | null;
  p95_seconds: number | null;
  max_seconds: number | null;
  samples: number;
}

export interface CostBucket {
  key: string;
  instrumented: boolean;
  metered: boolean;
  /** Metered spend only. */
  cost_usd: number | null;
  /** Dollars reported by subscription or local workers: never part of spend. Older servers omit it. */
  notional_cost_usd?: number | null;
  input_tokens: number | null;
  output_tokens: number | null;
  total_tokens: number | null;
  records: number;
}

export interface CostRollup {
  total: CostBucket;
  by_service: CostBucket[];
  by_model: CostBucket[];
  by_provider: CostBucket[];
  by_workitem: CostBucket[];
  by_worker: CostBucket[];
  by_billing_mode: CostBucket[];
}

export interface DailyPoint {
  date: string;
  cost_usd: number;
  total_tokens: number;
  lead_time: DurationStats;
}

/** A rollup's time window; `null` leaves that side open. */
export interface TimeWindow {
  since: string | null;
  until: string | null;
}

export interface Rollups {
  window: TimeWindow;
  generated_at: string;
  items: number;
  events_total: number;
  by_stage: Record<string, number>;
  by_status_class: Record<string, number>;
  latency_by_stage: Record<string, DurationStats>;
  latency_by_service: Record<string, DurationStats>;
  lead_time: DurationStats;
  span: DurationStats;
  cost: CostRollup;
  daily: DailyPoint[];
}

export interface Tokens {
  window: TimeWindow;
  cost: CostRollup;
  daily: DailyPoint[];
}

export type Severity = 'info' | 'warning' | 'high';

export interface Anomaly {
  /** e.g. `failure`, `stalled`, `correlation_conflict`, `budget_exceeded`; new kinds may appear. */
  kind: string;
  severity: Severity;
  correlation_key: string;
  title: string;
  detail: string;
  evidence: unknown;
}

export interface NeedsYouItem {
  correlation_key: string;
  title: string;
  reasons: string[];
}

export interface SearchHit {
  correlation_key: string;
  title: string;
  matched_on: string;
  matched_value: string;
  score: number;
}

export interface ActivityItem {
  seq: number;
  correlation_key: string;
  title?: string | null;
  id: string | null;
  service: ServiceName;
  task_id: string;
  status: string;
  time: string;
  received_at: string;
}

// Advise-and-confirm actions: proposals that run only when a person confirms.

export type ActionKind = 'approve_gate' | 'emit_issues' | 'trigger_handoff' | 'kick_handback' | 'recover' | 'recover_and_restart' | 'reject_review';
export type ActionStatus = 'prepared' | 'executing' | 'executed' | 'failed' | 'rejected' | 'expired';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export const ACTION_KINDS: readonly ActionKind[] = ['approve_gate', 'emit_issues', 'trigger_handoff', 'kick_handback', 'recover', 'recover_and_restart', 'reject_review'];
export const ACTION_STATUSES: readonly ActionStatus[] = ['prepared', 'executing', 'executed', 'failed', 'rejected', 'expired'];

/** One request of an action; `payload` is the JSON body (`null`: none). */
export interface ActionStep {
  method: HttpMethod;
  endpoint: string;
  payload: unknown;
}

/** What one executed step got back. */
export interface StepResult {
  method: HttpMethod;
  endpoint: string;
  status_code?: number | null;
  ok: boolean;
  response: unknown;
  error?: string | null;
  duration_ms: number;
}

/** A proposal kept server-side until a person confirms or rejects it, or it expires. */
export interface PreparedAction {
  id: string;
  kind: ActionKind;
  correlation_key: string;
  target_service: ServiceName;
  method: HttpMethod;
  endpoint: string;
  payload: unknown;
  follow_ups: ActionStep[];
  rationale: string;
  status: ActionStatus;
  created_at: string;
  expires_at: string;
  note: string | null;
  proposed_by: string;
  tenant: string;
  results: StepResult[];
}

export interface ItemActions {
  /** The kinds that can be proposed for the item now. */
  available: ActionKind[];
  /** The item's actions, newest first. */
  actions: PreparedAction[];
}

export interface TraceStep {
  name: string;
  input: unknown;
  output: unknown;
  is_error: boolean;
  ms: number;
}

export interface ChatAnswer {
  conversation_id: string;
  answer: string;
  trace: TraceStep[];
  proposals: PreparedAction[];
}

export interface InsightCard {
  id: string;
  kind: string;
  severity: Severity;
  title: string;
  detail: string;
  correlation_key: string | null;
  suggested: { kind: ActionKind; correlation_key: string; label: string } | null;
}

export interface AuditEntry {
  id: number;
  seq: number;
  tenant: string;
  at: string;
  actor: string;
  kind: string;
  correlation_key: string | null;
  target: string | null;
  method: string | null;
  endpoint: string | null;
  status_code: number | null;
  ok: boolean | null;
  action_id: string | null;
  payload_sha256: string | null;
  prev_hash: string;
  entry_hash: string;
}

export type ChainVerdict = 'ok' | 'tampered' | 'forked';

export interface AuditChain {
  verdict: ChainVerdict;
  rows: number;
  findings: { id: number; kind: string }[];
}

/** A refusal from the API, carrying the RFC 9457 problem's detail when there is one. */
export class ApiError extends Error {
  readonly status: number;
  readonly field: string | null;

  constructor(status: number, message: string, field: string | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.field = field;
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

/** Calls `listener` whenever any request is answered 401, e.g. when a session expires. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

async function problemOf(res: Response): Promise<ApiError> {
  let detail = `${res.status} ${res.statusText}`.trim();
  let field: string | null = null;
  try {
    const body = (await res.json()) as { detail?: string; title?: string; field?: string };
    detail = body.detail ?? body.title ?? detail;
    field = body.field ?? null;
  } catch {
    // Not a problem document (a proxy's HTML page, say): the status line will do.
  }
  return new ApiError(res.status, detail, field);
}

interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  body?: unknown;
  signal?: AbortSignal;
  /** Whether a 401 should end the session (not for sign-in attempts themselves). */
  notifyUnauthorized?: boolean;
}

async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await fetch(path, {
    method: opts.method ?? 'GET',
    headers: opts.body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    credentials: 'same-origin',
    signal: opts.signal,
  });
  if (!res.ok) {
    if (res.status === 401 && opts.notifyUnauthorized !== false) {
      unauthorizedListeners.forEach((l) => l());
    }
    throw await problemOf(res);
  }
  // Sign-out and similar answers may have no body at all.
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

const key = (k: string) => encodeURIComponent(k);

/** Every call the cockpit makes. */
export const api = {
  session: () => request<Session>('/api/session', { notifyUnauthorized: false }),
  signIn: (apiKey: string) =>
    request<Session>('/api/session', { method: 'POST', body: { key: apiKey }, notifyUnauthorized: false }),
  signOut: () => request<void>('/api/session', { method: 'DELETE', notifyUnauthorized: false }),

  workItems: (params: { limit?: number; cursor?: string | null }, signal?: AbortSignal) =>
    request<WorkItemPage>(`/api/workitems${query(params)}`, { signal }),
  workItem: (k: string, signal?: AbortSignal) => request<WorkItem>(`/api/workitems/${key(k)}`, { signal }),
  timeline: (k: string, signal?: AbortSignal) => request<Timeline>(`/api/workitems/${key(k)}/timeline`, { signal }),
  process: (k: string, signal?: AbortSignal) => request<ProcessAnswer>(`/api/workitems/${key(k)}/process`, { signal }),

  rollups: (signal?: AbortSignal) => request<Rollups>('/api/rollups', { signal }),
  tokens: (window: { since?: string; until?: string } = {}, signal?: AbortSignal) =>
    request<Tokens>(`/api/tokens${query({ since: window.since, until: window.until })}`, { signal }),
  anomalies: (signal?: AbortSignal) => request<{ count: number; anomalies: Anomaly[] }>('/api/anomalies', { signal }),
  needsYou: (signal?: AbortSignal) => request<{ count: number; items: NeedsYouItem[] }>('/api/needs-you', { signal }),
  needsYouCount: (signal?: AbortSignal) => request<{ count: number }>('/api/needs-you/count', { signal }),
  search: (q: string, limit: number, signal?: AbortSignal) =>
    request<{ query: string; count: number; results: SearchHit[] }>(`/api/search${query({ q, limit })}`, { signal }),
  activity: (limit: number, signal?: AbortSignal) =>
    request<{ items: ActivityItem[]; next_cursor: string | null }>(`/api/activity${query({ limit })}`, { signal }),

  services: (signal?: AbortSignal) => request<{ services: ServiceView[] }>('/api/services', { signal }),
  setServiceUrl: (name: ServiceName, url: string) =>
    request<ServiceView>(`/api/services/${name}`, { method: 'PUT', body: { url } }),
  refresh: () => request<unknown>('/api/refresh', { method: 'POST' }),

  itemActions: (k: string, signal?: AbortSignal) => request<ItemActions>(`/api/workitems/${key(k)}/actions`, { signal }),
  actions: (params: { status?: ActionStatus; limit?: number }, signal?: AbortSignal) =>
    request<{ actions: PreparedAction[] }>(`/api/actions${query(params)}`, { signal }),
  propose: (body: { kind: ActionKind; correlation_key: string; note?: string }) =>
    request<PreparedAction>('/api/actions/propose', { method: 'POST', body }),
  confirmAction: (id: string) => request<{ action: PreparedAction }>(`/api/actions/${key(id)}/confirm`, { method: 'POST', body: {} }),
  rejectAction: (id: string) => request<{ action: PreparedAction }>(`/api/actions/${key(id)}/reject`, { method: 'POST', body: {} }),

  chat: (body: { conversation_id?: string; message: string }, signal?: AbortSignal) =>
    request<ChatAnswer>('/api/copilot/chat', { method: 'POST', body, signal }),
  insights: (signal?: AbortSignal) => request<{ cards: InsightCard[] }>('/api/insights', { signal }),

  audit: (params: { limit?: number; cursor?: string | null }, signal?: AbortSignal) =>
    request<{ entries: AuditEntry[]; next_cursor: string | null }>(`/api/audit${query(params)}`, { signal }),
  auditChain: (signal?: AbortSignal) => request<AuditChain>('/api/audit/chain', { signal }),
};

/** Whether a session may change things (service URLs, refresh, proposing and confirming actions). */
export function canWrite(session: Session): boolean {
  return session.scopes.includes('write') || session.scopes.includes('admin');
}
