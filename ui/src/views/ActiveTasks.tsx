// Active tasks: every running stage with its phase and a progress bar fed by the
// upstreams' live progress frames. A task known only from a progress frame (its item not
// loaded yet) is listed too, until its feed says it finished.

import { useMemo } from 'react';
import { STAGES, STAGE_SERVICE, type ServiceName } from '../api';
import { SERVICE_LABEL, ago, keyLabel } from '../format';
import type { LiveState } from '../live';
import { useLive } from '../live';
import { openTask } from '../router';

interface ActiveTask {
  id: string;
  correlation_key: string | null;
  title: string | null;
  service: ServiceName;
  task_id: string;
  phase: string | null;
  status: string;
  percent: number | null;
  message: string | null;
  at: string;
}

const FINISHED = /^(completed?|done|failed|merged|error|cancell?ed)$/i;

/** Running stages joined with their latest progress; most recent activity first. */
function activeTasks(items: LiveState['items'], progress: LiveState['progress']): ActiveTask[] {
  const out = new Map<string, ActiveTask>();
  // Every task a loaded item knows, so progress that came before its item can be placed.
  const known = new Set<string>();
  for (const item of items.values()) {
    item.links.aifactory_task_ids.forEach((t) => known.add(`aifactory:${t}`));
    item.links.tfactory_spec_ids.forEach((t) => known.add(`tfactory:${t}`));
    if (item.links.session_id) known.add(`pfactory:${item.links.session_id}`);
    for (const s of STAGES) {
      const stage = item.stages[s];
      if (stage) known.add(`${STAGE_SERVICE[s]}:${stage.task_id}`);
    }
  }
  for (const item of items.values()) {
    for (const s of STAGES) {
      const stage = item.stages[s];
      if (!stage || stage.status_class !== 'running') continue;
      const id = `${STAGE_SERVICE[s]}:${stage.task_id}`;
      const p = progress.get(id);
      out.set(id, {
        id,
        correlation_key: item.correlation_key,
        title: item.title,
        service: STAGE_SERVICE[s],
        task_id: stage.task_id,
        phase: p?.phase ?? stage.phase,
        status: stage.status,
        percent: p?.percent ?? null,
        message: p?.message ?? null,
        at: p && p.at > stage.at ? p.at : stage.at,
      });
    }
  }
  for (const [id, p] of progress) {
    if (out.has(id) || FINISHED.test(p.status ?? '') || FINISHED.test(p.phase ?? '')) continue;
    // A task of a loaded item whose stage is not running has finished; its feed may lag.
    if (known.has(id) || (p.correlation_key && items.has(p.correlation_key))) continue;
    out.set(id, { id, correlation_key: p.correlation_key, title: null, service: p.service, task_id: p.task_id, phase: p.phase, status: p.status ?? 'running', percent: p.percent, message: p.message, at: p.at });
  }
  return [...out.values()].sort((a, b) => (a.at < b.at ? 1 : -1));
}

export function ActiveTasks() {
  const items = useLive((s) => s.items);
  const progress = useLive((s) => s.progress);
  const tasks = useMemo(() => activeTasks(items, progress), [items, progress]);

  return (
    <section className="view" aria-labelledby="active-title">
      <div className="view-head">
        <h1 id="active-title">Active tasks</h1>
        <span className="muted">{tasks.length} running</span>
      </div>
      {tasks.length === 0 ? (
        <p className="muted panel">No task is running right now.</p>
      ) : (
        <ul className="rows panel" aria-label="Running tasks">
          {tasks.map((t) => {
            const pct = t.percent === null ? null : Math.max(0, Math.min(100, t.percent));
            const name = `${SERVICE_LABEL[t.service]} task ${t.task_id}`;
            return (
              <li key={t.id} className="task">
                <div className="task-head">
                  {t.correlation_key ? (
                    <button type="button" className="link key" onClick={() => openTask(t.correlation_key as string)}>
                      {keyLabel(t.correlation_key)}
                    </button>
                  ) : (
                    <span className="muted">no work item yet</span>
                  )}
                  <span>{t.title ?? ''}</span>
                  <span className="muted small">
                    {name} · {ago(t.at)}
                  </span>
                </div>
                <div className="task-progress">
                  <progress max={100} value={pct ?? undefined} aria-label={`${name} progress`} />
                  <span className="task-pct">{pct === null ? '…' : `${Math.round(pct)}%`}</span>
                  <span className="badge tone-blue">{t.phase ?? t.status}</span>
                </div>
                {t.message && <p className="muted small">{t.message}</p>}
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
