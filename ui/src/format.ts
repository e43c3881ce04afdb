// How the cockpit writes numbers, money, durations and times.

const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat('en-US');

export function money(n: number): string {
  return usd.format(n);
}

/** Notional dollars (subscription or local workers), or null when there are none to show. */
export function notional(n: number | null | undefined): string | null {
  return n !== null && n !== undefined && n > 0 ? `${money(n)} notional` : null;
}

/**
 * A WorkItem key as people read it: a bare key gets its `#` (`#7150`), a
 * repository-qualified one is shown as sent (`acme/shop#7150`).
 */
export function keyLabel(key: string): string {
  return key.includes('#') ? key : `#${key}`;
}

export function tokens(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  return n >= 10_000 ? compact.format(n) : whole.format(n);
}

export function count(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : whole.format(n);
}

/** A duration in seconds as the two largest units: `45s`, `3m 20s`, `2h 5m`, `3d 4h`. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** How long ago `iso` was, relative to `now`. */
export function ago(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, (now - t) / 1000);
  return s < 5 ? 'just now' : `${duration(s).split(' ')[0]} ago`;
}

/** A timestamp in the reader's locale, to the second. */
export function when(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

/** Service names as people say them. */
export const SERVICE_LABEL: Record<string, string> = {
  pfactory: 'PFactory',
  aifactory: 'AIFactory',
  tfactory: 'TFactory',
  cfactory: 'CFactory',
};

export const STAGE_LABEL: Record<string, string> = { plan: 'Plan', code: 'Code', test: 'Test' };

/** Action kinds as buttons say them. */
export const ACTION_LABEL: Record<string, string> = {
  approve_gate: 'Approve gate',
  emit_issues: 'Emit issues',
  trigger_handoff: 'Trigger handoff',
  kick_handback: 'Kick handback',
  recover: 'Recover',
  recover_and_restart: 'Recover and restart',
  reject_review: 'Reject review',
};

/** An action kind's label, or the kind itself when this page does not know it. */
export function actionLabel(kind: string): string {
  return ACTION_LABEL[kind] ?? kind.replace(/_/g, ' ');
}

/** Anomaly kinds as lists say them. */
export const ANOMALY_LABEL: Record<string, string> = {
  failure: 'failure',
  handback_loop: 'handback loop',
  stalled: 'stalled',
  stuck: 'stuck',
  unproven: 'unproven',
  injection_flagged: 'injection flagged',
  injection_skipped: 'injection scan skipped',
  correlation_conflict: 'correlation conflict',
  missing_event_id: 'missing event id',
  cost_spike: 'cost spike',
  latency_spike: 'latency spike',
  cost_drift: 'cost drift',
  budget_exceeded: 'budget exceeded',
};

/** An anomaly kind's label, or the kind made readable when this page does not know it. */
export function anomalyLabel(kind: string): string {
  return ANOMALY_LABEL[kind] ?? (kind.replace(/[_.-]+/g, ' ').trim() || 'anomaly');
}

/** Seconds left as `m:ss` (or `h:mm:ss`), never negative. */
export function countdown(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** JSON as people read it, with two-space indents (`undefined` gives an empty string). */
export function pretty(value: unknown): string {
  if (value === undefined) return '';
  return JSON.stringify(value, null, 2);
}
