// Tokens and cost: totals, the daily series, and the breakdowns by service, model, work
// item and billing mode, over a window of UTC days (the last 30 by default). Dollars
// appear as spend only where usage was metered; dollars that subscription or local
// workers report are shown apart, as notional.

import { Suspense, lazy, useMemo, useState } from 'react';
import { api, type DailyPoint } from '../api';
import { CostTable, costText } from '../components/CostTable';
import { Panel } from '../components/States';
import { addDays, daySlots, utcDay } from '../days';
import { SERVICE_LABEL, notional, tokens } from '../format';
import { useFetched } from '../useFetched';

const DailyChart = lazy(() => import('../components/DailyChart'));

/** The windows offered in one click, in days ending today. */
export const LAST_DAYS = [7, 30, 90] as const;
/** The window the view opens on. */
export const DEFAULT_DAYS = 30;

/** The day after `day` (YYYY-MM-DD), as the server's exclusive `until`. */
export function dayAfter(day: string): string {
  return addDays(day, 1);
}

type Window = { since?: string; until?: string };

/** The window the picker asks for, or why it cannot be asked for. */
export function windowOf(from: string, to: string): Window | string {
  if (from && to && from > to) return 'The first day must not be after the last.';
  return { since: from || undefined, until: to ? dayAfter(to) : undefined };
}

/**
 * The first and last day the chart spans for the window `asked`: exactly its days when
 * both ends are set; an open end reaches today, or back to the data's first day (at
 * least the default number of days back).
 */
export function chartSpan(asked: Window, daily: DailyPoint[], today: string): { first: string; last: string } {
  const dates = daily.map((d) => d.date).sort();
  const latest = dates.at(-1);
  const earliest = dates[0];
  const last = asked.until ? addDays(asked.until, -1) : latest && latest > today ? latest : today;
  const back = addDays(last, -(DEFAULT_DAYS - 1));
  const first = asked.since ?? (earliest && earliest < back ? earliest : back);
  return first <= last ? { first, last } : { first, last: first };
}

export function TokensView() {
  const [today] = useState(() => utcDay());
  const [from, setFrom] = useState(() => addDays(today, -(DEFAULT_DAYS - 1)));
  const [to, setTo] = useState(today);
  // While the picker holds an impossible range, the last good window stays on screen.
  const [asked, setAsked] = useState<Window>(() => ({ since: from, until: dayAfter(to) }));
  const pick = (first: string, last: string) => {
    setFrom(first);
    setTo(last);
    const next = windowOf(first, last);
    if (typeof next !== 'string') setAsked(next);
  };
  const range = windowOf(from, to);
  // Each answer keeps the window it answers, so the chart spans the days its data covers.
  const t = useFetched((signal) => api.tokens(asked, signal).then((answer) => ({ ...answer, asked })), [asked.since, asked.until]);
  return (
    <section className="view" aria-labelledby="tokens-title">
      <div className="view-head">
        <h1 id="tokens-title">Tokens &amp; cost</h1>
        <form className="window-picker" aria-label="Time window" onSubmit={(e) => e.preventDefault()}>
          <div className="window-presets" role="group" aria-label="Last days">
            {LAST_DAYS.map((n) => {
              const first = addDays(today, -(n - 1));
              return (
                <button key={n} type="button" className="secondary" aria-pressed={from === first && to === today} onClick={() => pick(first, today)}>
                  {n} days
                </button>
              );
            })}
          </div>
          <label>
            First day (UTC) <input type="date" value={from} max={to || undefined} onChange={(e) => pick(e.target.value, to)} />
          </label>
          <label>
            Last day (UTC) <input type="date" value={to} min={from || undefined} onChange={(e) => pick(from, e.target.value)} />
          </label>
          <button type="button" className="secondary" aria-pressed={!from && !to} onClick={() => pick('', '')}>
            All time
          </button>
        </form>
      </div>
      {typeof range === 'string' && (
        <p className="note note-error" role="alert">
          {range}
        </p>
      )}
      <Panel what="tokens and cost" data={t.data} error={t.error} onRetry={t.reload}>
        {({ cost, daily, asked: answered }) => (
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
            <DailyFigure daily={daily} asked={answered} today={today} />
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

/** The daily chart of the answered window, with a caption naming the days it spans. */
function DailyFigure({ daily, asked, today }: { daily: DailyPoint[]; asked: Window; today: string }) {
  const { first, last } = chartSpan(asked, daily, today);
  // The chart draws anew when its days change, not on every render of the view.
  const days = useMemo(() => daySlots(daily, first, last), [daily, first, last]);
  return (
    <figure className="panel">
      <figcaption>
        Daily spend (bars, left axis) and tokens (dashed line, right axis), one per UTC day:{' '}
        <span data-span>
          {days.length === 1 ? first : `${first} to ${last}`} ({days.length} {days.length === 1 ? 'day' : 'days'})
        </span>
      </figcaption>
      {daily.length === 0 ? (
        <p className="muted">No usage in these days.</p>
      ) : (
        <Suspense fallback={<p className="muted">Loading chart…</p>}>
          <DailyChart days={days} />
        </Suspense>
      )}
    </figure>
  );
}
