// Mission Control: the whole pipeline at a glance. Tiles, insight cards and panels come
// from the insight endpoints, refetched when the socket reports changes; the recently
// changed list comes straight from the live store.

import { useMemo } from 'react';
import { api, STAGES, type Rollups } from '../api';
import { AnomalyList } from '../components/AnomalyList';
import { CostTable, costText } from '../components/CostTable';
import { InsightCards } from '../components/InsightCards';
import { Link } from '../components/Link';
import { StageChip } from '../components/StageChip';
import { ErrorNote, Panel } from '../components/States';
import { columnOf } from '../board';
import { SERVICE_LABEL, STAGE_LABEL, ago, count, duration, keyLabel, notional } from '../format';
import { useLive } from '../live';
import { openTask } from '../router';
import { useFetched } from '../useFetched';

function Tile({ label, value, hint }: { label: string; value: string; hint?: string }) {
  return (
    <div className="tile">
      <span className="tile-label">{label}</span>
      <span className="tile-value">{value}</span>
      {hint && <span className="muted small">{hint}</span>}
    </div>
  );
}

function Strip({ rollups }: { rollups: Rollups | null }) {
  return (
    <nav className="strip" aria-label="Pipeline stages">
      {STAGES.map((s, i) => (
        <Link key={s} to={`/pipeline?stage=${s}`} className="strip-stage">
          <span className="strip-name">{STAGE_LABEL[s]}</span>
          <span className="strip-count">
            {count(rollups?.by_stage[s])}
            <span className="sr-only"> work items: show them on the board</span>
          </span>
          {i < STAGES.length - 1 && (
            <span className="strip-arrow" aria-hidden="true">
              →
            </span>
          )}
        </Link>
      ))}
    </nav>
  );
}

function RecentlyChanged() {
  const items = useLive((s) => s.items);
  const recent = useMemo(() => [...items.values()].sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1)).slice(0, 8), [items]);
  if (recent.length === 0) return <p className="muted">No work items yet.</p>;
  return (
    <ul className="rows" aria-label="Recently changed work items">
      {recent.map((item) => {
        const col = columnOf(item);
        return (
          <li key={item.correlation_key}>
            <button type="button" className="row-button" onClick={() => openTask(item.correlation_key)}>
              <span className="row-main">
                <span>
                  <span className="key">{keyLabel(item.correlation_key)}</span> {item.title ?? 'untitled'}
                </span>
                <span className="muted small">changed {ago(item.updated_at)}</span>
              </span>
              <StageChip name={col} stage={item.stages[col]} stalled={item.liveness.stalled} />
            </button>
          </li>
        );
      })}
    </ul>
  );
}

function Feed() {
  const activity = useFetched((signal) => api.activity(25, signal), []);
  return (
    <Panel what="the event feed" data={activity.data} error={activity.error} onRetry={activity.reload}>
      {({ items }) =>
        items.length === 0 ? (
          <p className="muted">No events yet.</p>
        ) : (
          <ol className="rows feed" aria-label="Latest events, newest first">
            {items.map((e) => (
              <li key={e.seq}>
                <button type="button" className="row-button" onClick={() => openTask(e.correlation_key)}>
                  <span className="key">{keyLabel(e.correlation_key)}</span>
                  <span className="feed-title">{e.title ?? ''}</span>
                  <span>{SERVICE_LABEL[e.service] ?? e.service}</span>
                  <span className="feed-status">{e.status}</span>
                  <span className="muted small">{ago(e.time)}</span>
                </button>
              </li>
            ))}
          </ol>
        )
      }
    </Panel>
  );
}

export function MissionControl() {
  const rollups = useFetched((signal) => api.rollups(signal), []);
  const anomalies = useFetched((signal) => api.anomalies(signal), []);
  const insights = useFetched((signal) => api.insights(signal), []);
  const counts = useLive((s) => s.counts);
  const r = rollups.data;

  return (
    <section className="view" aria-labelledby="mc-title">
      <div className="view-head">
        <h1 id="mc-title">Mission Control</h1>
      </div>
      <div className="tiles">
        <Tile label="Work items" value={count(r?.items ?? counts?.workitems)} hint={counts?.stalled ? `${counts.stalled} stalled` : undefined} />
        <Tile label="Events" value={count(r?.events_total)} />
        <Tile label="Anomalies" value={count(anomalies.data?.count)} />
        <Tile label="Median lead time" value={duration(r?.lead_time.p50_seconds)} hint={r ? `${r.lead_time.samples} finished` : undefined} />
        <Tile
          label="Spend"
          value={r ? costText(r.cost.total) : '—'}
          hint={r ? [`${count(r.cost.total.total_tokens)} tokens`, notional(r.cost.total.notional_cost_usd)].filter(Boolean).join(' · ') : undefined}
        />
      </div>
      {rollups.error && !r && <ErrorNote what="the rollups" error={rollups.error} onRetry={rollups.reload} />}
      <Strip rollups={r} />
      <section className="panel" aria-labelledby="mc-insights">
        <h2 id="mc-insights">Insights</h2>
        <Panel what="the insights" data={insights.data} error={insights.error} onRetry={insights.reload}>
          {(d) => <InsightCards cards={d.cards} />}
        </Panel>
      </section>
      <div className="grid-2">
        <section className="panel" aria-labelledby="mc-recent">
          <h2 id="mc-recent">Recently changed</h2>
          <RecentlyChanged />
        </section>
        <section className="panel" aria-labelledby="mc-feed">
          <h2 id="mc-feed">Live events</h2>
          <Feed />
        </section>
        <section className="panel" aria-labelledby="mc-anomalies">
          <h2 id="mc-anomalies">Anomalies</h2>
          <Panel what="the anomalies" data={anomalies.data} error={anomalies.error} onRetry={anomalies.reload}>
            {(a) => <AnomalyList anomalies={a.anomalies} />}
          </Panel>
        </section>
        <section className="panel" aria-labelledby="mc-cost">
          <h2 id="mc-cost">Cost by work item</h2>
          <Panel what="the costs" data={r} error={rollups.error} onRetry={rollups.reload}>
            {(data) => <CostTable caption="Top work items by cost" groupLabel="Work item" buckets={data.cost.by_workitem} limit={8} workItems />}
          </Panel>
        </section>
      </div>
    </section>
  );
}
