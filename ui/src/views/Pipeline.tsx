// The pipeline board: Plan, Code and Test columns of cards, each column windowed so
// thousands of items stay smooth. Filters live in the URL, so the Mission Control strip
// can link to a filtered board and a filtered board can be shared.

import { useEffect, useMemo, useState } from 'react';
import { STAGES, STATUS_CLASSES, type ServiceName, type StageName, type StatusClass } from '../api';
import { columns } from '../board';
import { VirtualList } from '../components/VirtualList';
import { WorkItemCard } from '../components/WorkItemCard';
import { SERVICE_LABEL, STAGE_LABEL, count } from '../format';
import { useLive, useLiveStore } from '../live';
import { navigate, useLocation, withParams } from '../router';
import { ErrorNote } from '../components/States';

/** Card height in pixels, including the gap below it; the windowing relies on it. */
const CARD_HEIGHT = 112;

function pick<T extends string>(value: string | null, allowed: readonly T[]): T | null {
  return allowed.includes(value as T) ? (value as T) : null;
}

/** Pages every item into the live store once (again after the socket was offline). */
function useAllItems(): { error: Error | null; retry: () => void } {
  const store = useLiveStore();
  const complete = useLive((s) => s.complete);
  const [error, setError] = useState<Error | null>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (complete) return;
    store.loadAll().then(
      () => setError(null),
      (e: unknown) => setError(e instanceof Error ? e : new Error(String(e))),
    );
  }, [complete, store, attempt]);
  return { error, retry: () => setAttempt((n) => n + 1) };
}

export function Pipeline() {
  const { params } = useLocation();
  const stage = pick<StageName>(params.get('stage'), STAGES);
  const status = pick<StatusClass>(params.get('status'), STATUS_CLASSES);
  const service = pick<ServiceName>(params.get('service'), ['pfactory', 'aifactory', 'tfactory']);
  const text = params.get('q') ?? '';
  const items = useLive((s) => s.items);
  const complete = useLive((s) => s.complete);
  const { error, retry } = useAllItems();
  const cols = useMemo(() => columns(items.values(), { status, service, text }), [items, status, service, text]);
  const shown = stage ? [stage] : STAGES;
  const set = (k: string, v: string | null) => navigate(withParams({ [k]: v }), { replace: true });

  return (
    <section className="view view-board" aria-labelledby="board-title">
      <div className="view-head">
        <h1 id="board-title">Pipeline</h1>
        {!complete && !error && <span className="muted">loading every work item…</span>}
      </div>
      {error && <ErrorNote what="the work items" error={error} onRetry={retry} />}
      <form className="filters" role="search" aria-label="Filter the board" onSubmit={(e) => e.preventDefault()}>
        <label>
          Stage
          <select value={stage ?? ''} onChange={(e) => set('stage', e.target.value)}>
            <option value="">all</option>
            {STAGES.map((s) => (
              <option key={s} value={s}>
                {STAGE_LABEL[s]}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select value={status ?? ''} onChange={(e) => set('status', e.target.value)}>
            <option value="">all</option>
            {STATUS_CLASSES.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        <label>
          Service
          <select value={service ?? ''} onChange={(e) => set('service', e.target.value)}>
            <option value="">all</option>
            {(['pfactory', 'aifactory', 'tfactory'] as const).map((s) => (
              <option key={s} value={s}>
                {SERVICE_LABEL[s]}
              </option>
            ))}
          </select>
        </label>
        <label className="grow">
          Text
          <input type="search" value={text} placeholder="key, title, repo, branch, task…" onChange={(e) => set('q', e.target.value)} />
        </label>
      </form>
      <div className="board" style={{ gridTemplateColumns: `repeat(${shown.length}, minmax(0, 1fr))` }}>
        {shown.map((s) => {
          const list = cols[s];
          return (
            <section key={s} className="column" aria-labelledby={`col-${s}`} data-stage={s}>
              <h2 id={`col-${s}`} className="column-head">
                {STAGE_LABEL[s]} <span className="count">{count(list.length)}</span>
              </h2>
              {list.length === 0 ? (
                <p className="muted empty">{complete ? 'Nothing here.' : 'Loading…'}</p>
              ) : (
                <VirtualList
                  count={list.length}
                  rowHeight={CARD_HEIGHT}
                  label={`${STAGE_LABEL[s]} column`}
                  rowKey={(i) => list[i]?.correlation_key ?? String(i)}
                  renderRow={(i) => {
                    const item = list[i];
                    return item ? <WorkItemCard item={item} /> : null;
                  }}
                />
              )}
            </section>
          );
        })}
      </div>
    </section>
  );
}
