// Anomalies, most severe first, each opening its work item. The detail line says why it
// fired, in the words the server chose.

import type { Anomaly, Severity } from '../api';
import { openTask } from '../router';

const RANK: Record<Severity, number> = { high: 0, warning: 1, info: 2 };
const TONE: Record<Severity, string> = { high: 'red', warning: 'amber', info: 'grey' };

export function AnomalyList({ anomalies, limit = 12 }: { anomalies: Anomaly[]; limit?: number }) {
  if (anomalies.length === 0) return <p className="muted">No anomalies. Everything looks normal.</p>;
  const sorted = [...anomalies].sort((a, b) => (RANK[a.severity] ?? 3) - (RANK[b.severity] ?? 3));
  return (
    <ul className="rows" aria-label="Anomalies">
      {sorted.slice(0, limit).map((a, i) => (
        <li key={`${a.kind}-${a.correlation_key}-${i}`}>
          <button type="button" className="row-button" onClick={() => openTask(a.correlation_key)}>
            <span className={`badge tone-${TONE[a.severity] ?? 'grey'}`}>{a.severity}</span>
            <span className="row-main">
              <span>
                <span className="key">#{a.correlation_key}</span> {a.title}
              </span>
              <span className="muted small">
                {a.kind.replace(/_/g, ' ')}: {a.detail}
              </span>
            </span>
          </button>
        </li>
      ))}
      {anomalies.length > limit && <li className="muted small">and {anomalies.length - limit} more</li>}
    </ul>
  );
}
