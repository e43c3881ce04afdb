// Needs you: the work items waiting on a person, each with every reason it waits.

import { api } from '../api';
import { Panel } from '../components/States';
import { keyLabel } from '../format';
import { openTask } from '../router';
import { useFetched } from '../useFetched';

export function NeedsYou() {
  const needs = useFetched((signal) => api.needsYou(signal), []);
  return (
    <section className="view" aria-labelledby="needs-title">
      <div className="view-head">
        <h1 id="needs-title">Needs you</h1>
        {needs.data && <span className="muted">{needs.data.count} waiting</span>}
      </div>
      <Panel what="the items that need you" data={needs.data} error={needs.error} onRetry={needs.reload}>
        {({ items }) =>
          items.length === 0 ? (
            <p className="muted panel">Nothing needs you right now.</p>
          ) : (
            <ul className="rows panel" aria-label="Work items waiting on a person">
              {items.map((n) => (
                <li key={n.correlation_key}>
                  <button type="button" className="row-button" onClick={() => openTask(n.correlation_key)}>
                    <span className="row-main">
                      <span>
                        <span className="key">{keyLabel(n.correlation_key)}</span> {n.title}
                      </span>
                      <span className="reasons">
                        {n.reasons.map((r) => (
                          <span key={r} className="badge tone-amber">
                            {r}
                          </span>
                        ))}
                      </span>
                    </span>
                  </button>
                </li>
              ))}
            </ul>
          )
        }
      </Panel>
    </section>
  );
}
