// Agents: the work items whose coding agent runs now with a terminal its service serves
// (`GET /api/live-agents`), read again after live changes and on Refresh. Watch opens the
// item's drawer with its console.

import { api, type LiveAgentList } from '../api';
import { Panel } from '../components/States';
import { SERVICE_LABEL, ago, keyLabel } from '../format';
import { navigate, openTask, withParams } from '../router';
import { useFetched } from '../useFetched';

/** Opens `key`'s drawer with its console showing. */
export function watchConsole(key: string): void {
  navigate(withParams({ task: key, console: '1' }));
}

function AgentRows({ list }: { list: LiveAgentList }) {
  if (!list.enabled) {
    return (
      <p className="muted panel" data-consoles="off">
        Agent consoles are off{list.detail ? `: ${list.detail}` : ''}.
      </p>
    );
  }
  return (
    <>
      {list.detail && <p className="note small">Some consoles may be missing: {list.detail}.</p>}
      {list.agents.length === 0 ? (
        <p className="muted panel">No agent is running with a console right now.</p>
      ) : (
        <ul className="rows panel" aria-label="Live agent consoles">
          {list.agents.map((a) => (
            <li key={`${a.service}:${a.task_id}:${a.correlation_key}`} className="task" data-agent={a.correlation_key}>
              <div className="task-head">
                <button type="button" className="link key" onClick={() => openTask(a.correlation_key)}>
                  {keyLabel(a.correlation_key)}
                </button>
                <span>{a.title ?? ''}</span>
                <span className="muted small">
                  {SERVICE_LABEL[a.service] ?? a.service} task {a.task_id} · {a.status} · started {ago(a.started_at)}
                </span>
                <button type="button" onClick={() => watchConsole(a.correlation_key)} aria-label={`Watch the console of ${keyLabel(a.correlation_key)}`}>
                  Watch
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

export function Agents() {
  const live = useFetched((signal) => api.liveAgents(signal), []);
  const n = live.data?.enabled ? live.data.agents.length : null;
  return (
    <section className="view" aria-labelledby="agents-title">
      <div className="view-head">
        <h1 id="agents-title">Agents</h1>
        {n !== null && <span className="muted">{n} live</span>}
        <button type="button" className="secondary" onClick={live.reload}>
          Refresh
        </button>
      </div>
      <Panel what="the live agents" data={live.data} error={live.error} onRetry={live.reload}>
        {(list) => <AgentRows list={list} />}
      </Panel>
    </section>
  );
}
