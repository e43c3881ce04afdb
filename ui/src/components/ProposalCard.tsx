// A prepared action as the person who confirms it must see it: what it does, the service
// it goes to, the exact method, endpoint and JSON body of every request in order, why, and
// how long it stays confirmable. Nothing runs until Confirm is clicked; after that the
// card shows the outcome and each request's result. Without the write scope the card is
// read-only.

import { useEffect, useId, useRef, useState } from 'react';
import { api, ApiError, canApprove, canWrite, type ActionKind, type ActionStatus, type ActionStep, type Door, type PreparedAction, type StepResult } from '../api';
import { SERVICE_LABEL, actionLabel, countdown, keyLabel, pretty, when } from '../format';
import { useSession } from '../session';

export const STATUS_TONE: Record<ActionStatus, string> = {
  prepared: 'blue',
  executing: 'violet',
  executed: 'green',
  failed: 'red',
  rejected: 'grey',
  expired: 'grey',
};

const RANK: Record<ActionStatus, number> = { prepared: 0, executing: 1, executed: 2, failed: 2, rejected: 2, expired: 2 };

/** The server's reason for a refusal, in its own words. */
export function reasonOf(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  return 'the server could not be reached';
}

/** The current time, ticking once a second while `active` (a clock for the countdown, not a poll). */
function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [active]);
  return now;
}

interface ProposeProps {
  kind: ActionKind;
  correlationKey: string;
  /** The button's text. */
  label: string;
  /** Called with the prepared proposal, to be shown as a card to confirm or reject. */
  onProposed: (action: PreparedAction) => void;
  /** The id of what the button acts on, when its text alone does not say (a row's title). */
  describedBy?: string;
}

/**
 * One button that prepares one proposal (POST /api/actions/propose) and, when the server
 * refuses, says why in its words. Preparing sends nothing upstream: the card does, once a
 * person confirms it.
 */
export function ProposeButton({ kind, correlationKey, label, onProposed, describedBy }: ProposeProps) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const propose = async () => {
    setBusy(true);
    setError(null);
    try {
      onProposed(await api.propose({ kind, correlation_key: correlationKey }));
    } catch (e) {
      setError(reasonOf(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <button type="button" className="secondary" onClick={propose} disabled={busy} data-suggested={kind} aria-describedby={describedBy}>
        {busy ? 'Preparing…' : label}
      </button>
      {error && (
        <p className="note note-error" role="alert">
          Not proposed: {error}
        </p>
      )}
    </>
  );
}

export function ActionStatusBadge({ status }: { status: ActionStatus }) {
  return (
    <span className={`badge tone-${STATUS_TONE[status] ?? 'grey'}`} data-action-status={status}>
      {status}
    </span>
  );
}

function Request({ step, n, total }: { step: ActionStep; n: number; total: number }) {
  const body = step.payload === null || step.payload === undefined ? null : pretty(step.payload);
  return (
    <li className="step" data-step={n}>
      <p className="step-line">
        {total > 1 && <span className="muted small">Step {n} </span>}
        <code className="request">
          <span className="method" data-method={step.method}>
            {step.method}
          </span>{' '}
          <span className="endpoint">{step.endpoint}</span>
        </code>
      </p>
      {body === null ? (
        <p className="muted small">No body.</p>
      ) : (
        <pre className="payload" tabIndex={0} role="group" aria-label={`Body of step ${n}`}>
          {body}
        </pre>
      )}
    </li>
  );
}

function Result({ r, n }: { r: StepResult; n: number }) {
  return (
    <li className="step-result" data-ok={r.ok} data-step={n}>
      <p className="step-line">
        <span className={`badge tone-${r.ok ? 'green' : 'red'}`}>{r.ok ? 'ok' : 'failed'}</span>{' '}
        <code className="request">
          {r.method} {r.endpoint}
        </code>{' '}
        <span className="status-code">{r.status_code !== null && r.status_code !== undefined ? `HTTP ${r.status_code}` : 'no answer'}</span>
        <span className="muted small"> · {r.duration_ms} ms</span>
      </p>
      {r.error && <p className="step-error">{r.error}</p>}
      {r.response !== null && r.response !== undefined && (
        <details>
          <summary>Response of step {n}</summary>
          <pre className="payload" tabIndex={0} role="group" aria-label={`Response of step ${n}`}>
            {pretty(r.response)}
          </pre>
        </details>
      )}
    </li>
  );
}

const DOOR_LABEL: Record<Door, string> = { ui: 'in the cockpit', api: 'over the API', copilot: 'by the copilot', mcp: 'over MCP' };

interface Props {
  action: PreparedAction;
  /** Called with the action after a confirm or reject (or with nothing after a refusal). */
  onChange?: (action?: PreparedAction) => void;
  /** The level of the card's heading, to fit where it is shown. */
  headingLevel?: 3 | 4;
}

export function ProposalCard({ action, onChange, headingLevel = 4 }: Props) {
  const session = useSession();
  const writable = canWrite(session);
  const approvable = canApprove(session);
  const [local, setLocal] = useState<PreparedAction | null>(null);
  const [busy, setBusy] = useState<'confirm' | 'reject' | null>(null);
  const [error, setError] = useState<string | null>(null);
  const titleId = useId();
  // The buttons go away (or were disabled) while the request ran: focus moves to the
  // outcome or the refusal instead of falling to the page, so keyboard users land on what
  // happened.
  const settled = useRef<HTMLDivElement>(null);
  const [focusOutcome, setFocusOutcome] = useState(0);
  useEffect(() => {
    if (focusOutcome > 0) settled.current?.focus();
  }, [focusOutcome]);
  // Whichever copy is further along: this card's own answer, or a newer list from the parent.
  const a = local && RANK[local.status] >= RANK[action.status] ? local : action;
  const prepared = a.status === 'prepared';
  const now = useNow(prepared);
  const left = (Date.parse(a.expires_at) - now) / 1000;
  const expired = prepared && left <= 0;
  const steps: ActionStep[] = [{ method: a.method, endpoint: a.endpoint, payload: a.payload }, ...a.follow_ups];
  const placeholders = steps.some((s) => JSON.stringify(s.payload ?? null).includes('{{'));
  const Heading = headingLevel === 3 ? 'h3' : 'h4';

  const run = async (which: 'confirm' | 'reject') => {
    setBusy(which);
    setError(null);
    try {
      const res = which === 'confirm' ? await api.confirmAction(a.id) : await api.rejectAction(a.id);
      setLocal(res.action);
      onChange?.(res.action);
    } catch (e) {
      setError(reasonOf(e));
      onChange?.();
    } finally {
      setBusy(null);
      setFocusOutcome((n) => n + 1);
    }
  };

  return (
    <article className="proposal" aria-labelledby={titleId} data-action-id={a.id} data-status={a.status}>
      <header className="proposal-head">
        <Heading id={titleId} className="proposal-title">
          {actionLabel(a.kind)} <span className="key">{keyLabel(a.correlation_key)}</span>
        </Heading>
        <ActionStatusBadge status={a.status} />
      </header>
      <p className="proposal-rationale">{a.rationale}</p>
      <dl className="proposal-facts">
        <div>
          <dt>Sends to</dt>
          <dd data-target={a.target_service}>{SERVICE_LABEL[a.target_service] ?? a.target_service}</dd>
        </div>
        <div>
          <dt>Proposed</dt>
          <dd>
            {when(a.created_at)} by {a.proposed_by}
            {a.proposed_via && <span className="muted"> ({DOOR_LABEL[a.proposed_via]})</span>}
          </dd>
        </div>
        <div>
          <dt>Action</dt>
          <dd>
            <code className="action-id">{a.id}</code>
          </dd>
        </div>
      </dl>
      {a.note && (
        <p className="small">
          <span className="muted">Note: </span>
          {a.note}
        </p>
      )}
      <ol className="steps" aria-label={steps.length > 1 ? `The ${steps.length} requests it sends, in order` : 'The request it sends'}>
        {steps.map((s, i) => (
          <Request key={i} step={s} n={i + 1} total={steps.length} />
        ))}
      </ol>
      {steps.length > 1 && <p className="muted small">Each later step is sent only if the one before it succeeded.</p>}
      {placeholders && prepared && <p className="muted small">Values in {'{{…}}'} (who approved, and when) are filled in when you confirm.</p>}

      {prepared && (
        <p className={`small ${expired ? 'warn' : 'muted'}`} data-expiry>
          {expired ? 'Expired: propose it again to act.' : `Expires in ${countdown(left)}`}
          <span className="sr-only"> (at {when(a.expires_at)})</span>
        </p>
      )}
      {prepared && (writable || approvable) && (
        <div className="proposal-buttons">
          {approvable && (
            <button type="button" onClick={() => run('confirm')} disabled={busy !== null || expired} aria-describedby={titleId}>
              {busy === 'confirm' ? 'Confirming…' : 'Confirm'}
            </button>
          )}
          {writable && (
            <button type="button" className="secondary" onClick={() => run('reject')} disabled={busy !== null} aria-describedby={titleId}>
              {busy === 'reject' ? 'Rejecting…' : 'Reject'}
            </button>
          )}
        </div>
      )}
      {prepared && !approvable && <p className="muted small">Confirming needs the approve scope.</p>}
      {a.decided_by && !prepared && (
        <p className="small" data-decided-by>
          <span className="muted">{a.status === 'rejected' ? 'Rejected' : 'Confirmed'} by </span>
          {a.decided_by}
          {a.decided_via && <span className="muted"> ({DOOR_LABEL[a.decided_via]})</span>}
        </p>
      )}
      {busy === 'confirm' && (
        <p className="muted small" role="status">
          Sending the request to {SERVICE_LABEL[a.target_service] ?? a.target_service}…
        </p>
      )}
      <div ref={settled} tabIndex={-1} className="outcome">
        {error && (
          <p className="note note-error" role="alert">
            Refused: {error}
          </p>
        )}
        {a.results.length > 0 && (
          <div role="status" aria-label={`Outcome: ${a.status}`}>
            <p className="small">
              {a.status === 'executed' ? 'Executed: every request succeeded.' : a.status === 'failed' ? 'Failed: see the request that did not succeed.' : `Now ${a.status}.`}
            </p>
            <ol className="steps" aria-label="Results, in order">
              {a.results.map((r, i) => (
                <Result key={i} r={r} n={i + 1} />
              ))}
            </ol>
          </div>
        )}
        {a.results.length === 0 && (a.status === 'executed' || a.status === 'failed') && <p className="muted small">No request results were recorded.</p>}
        {a.status === 'rejected' && <p className="muted small">Rejected: nothing was sent.</p>}
        {a.status === 'expired' && <p className="muted small">Expired before anyone confirmed it: nothing was sent.</p>}
      </div>
    </article>
  );
}
