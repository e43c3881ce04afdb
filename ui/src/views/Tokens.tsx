// Tokens and cost: totals, the daily series, and the breakdowns by service, model, work
// item and billing mode. Dollars appear as spend only where usage was metered; dollars
// that subscription or local workers report are shown apart, as notional.

import { Suspense, lazy, useState } from 'react';
import { api } from '../api';
import { CostTable, costText } from '../components/CostTable';
import { Panel } from '../components/States';
import { SERVICE_LABEL, notional, tokens } from '../format';
import { useFetched } from '../useFetched';

const DailyChart = lazy(() => import('../components/DailyChart'));

/** The day after `day` (YYYY-MM-DD), as the server's exclusive `until`. */
export function dayAfter(day: string): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

type Window = { since?: string; until?: string };

/** The window the picker asks for, or why it cannot be asked for. */
export function windowOf(from: string, to: string): Window | string {
  if (from && to && from > to) return 'The first day must not be after the last.';
  return { since: from || undefined, until: to ? dayAfter(to) : undefined };
}

export function TokensView() {
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  // While the picker holds an impossible range, the last good window stays on screen.
  const [asked, setAsked] = useState<Window>({});
  const pick = (first: string, last: string) => {
    setFrom(first);
    setTo(last);
    const next = windowOf(first, last);
    if (typeof next !== 'string') setAsked(next);
  };
  const range = windowOf(from, to);
  const t = useFetched((signal) => api.tokens(asked, signal), [asked.since, asked.until]);
  return (
    <section className="view" aria-labelledby="tokens-title">
      <div className="view-head">
        <h1 id="tokens-title">Tokens &amp; cost</h1>
        <form className="window-picker" aria-label="Time window" onSubmit={(e) => e.preventDefault()}>
          <label>
            First day (UTC) <input type="date" value={from} max={to || undefined} onChange={(e) => pick(e.target.value, to)} />
          </label>
          <label>
            Last day (UTC) <input type="date" value={to} min={from || undefined} onChange={(e) => pick(from, e.target.value)} />
          </label>
          {(from || to) && (
            <button type="button" onClick={() => pick('', '')}>
              All time
            </button>
          )}
        </form>
      </div>
      {typeof range === 'string' && (
        <p className="note note-error" role="alert">
          {range}
        </p>
      )}
      <Panel what="tokens and cost" data={t.data} error={t.error} onRetry={t.reload}>
        {({ cost, daily }) => (
          <>
            <div className="tiles">
              <div className="tile">
                <span className="tile-label">Spend (metered)</span>
                <span className="tile-value">{costText(cost.total)}</span>
                {notional(cost.total.notional_cost_usd) && (
                  <span className="muted small" data-notional>
                    {notional(cost.total.notional_cost_usd)}, not spend
                  </span>
                )}
              </div>
              <div className="tile">
                <span className="tile-label">Tokens</span>
                <span className="tile-value">{tokens(cost.total.total_tokens)}</span>
              </div>
              <div className="tile">
                <span className="tile-label">Usage records</span>
                <span className="tile-value">{cost.total.records}</span>
              </div>
            </div>
            <figure className="panel">
              <figcaption>Daily spend (solid, left axis) and tokens (dashed, right axis), UTC days</figcaption>
              {daily.length === 0 ? (
                <p className="muted">No daily usage yet.</p>
              ) : (
                <Suspense fallback={<p className="muted">Loading chart…</p>}>
                  <DailyChart daily={daily} />
                </Suspense>
              )}
            </figure>
            <div className="grid-2">
              <div className="panel">
                <CostTable caption="By service" groupLabel="Service" buckets={cost.by_service} labelOf={(k) => SERVICE_LABEL[k] ?? k} />
              </div>
              <div className="panel">
                <CostTable caption="By billing mode" groupLabel="Billing mode" buckets={cost.by_billing_mode} />
              </div>
              <div className="panel">
                <CostTable caption="By model" groupLabel="Model" buckets={cost.by_model} />
              </div>
              <div className="panel">
                <CostTable caption="By work item" groupLabel="Work item" buckets={cost.by_workitem} workItems />
              </div>
            </div>
          </>
        )}
      </Panel>
    </section>
  );
}
