// Anomalies, most severe first, each opening its work item. The detail line says why it
// fired, in the words the server chose; kinds this page does not know are shown by name.

import type { Anomaly, Severity } from '../api';
import { anomalyLabel, keyLabel, money } from '../format';
import { openTask } from '../router';

const RANK: Record<Severity, number> = { high: 0, warning: 1, info: 2 };
const TONE: Record<Severity, string> = { high: 'red', warning: 'amber', info: 'grey' };

function numberAt(evidence: unknown, field: string): number | null {
  if (!evidence || typeof evidence !== 'object') return null;
  const v = (evidence as Record<string, unknown>)[field];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** A budget anomaly's figures from its evidence (`spent $12.40 of a $10.00 limit`), unless the detail already says them. */
export function budgetFigures(a: Anomaly): string | null {
  const spent = numberAt(a.evidence, 'spent_usd');
  const limit = numberAt(a.evidence, 'limit_usd');
  if (spent === null || limit === null) return null;
  if (a.detail.includes(money(spent)) && a.detail.includes(money(limit))) return null;
  return `spent ${money(spent)} of a ${money(limit)} limit`;
}

function Row({ a }: { a: Anomaly }) {
  const figures = budgetFigures(a);
  const main = (
    <>
      <span className={`badge tone-${TONE[a.severity] ?? 'grey'}`}>{a.severity}</span>
      <span className="row-main">
        <span>
          {a.correlation_key && <span className="key">{keyLabel(a.correlation_key)}</span>} {a.title}
        </span>
        <span className="muted small">
          {anomalyLabel(a.kind)}
          {a.detail ? `: ${a.detail}` : ''}
          {figures ? ` (${figures})` : ''}
        </span>
      </span>
    </>
  );
  // A tenant-wide finding (a budget, say) names no work item to open.
  return a.correlation_key ? (
    <button type="button" className="row-button" onClick={() => openTask(a.correlation_key)} data-kind={a.kind}>
      {main}
    </button>
  ) : (
    <div className="row-button" data-kind={a.kind}>
      {main}
    </div>
  );
}

export function AnomalyList({ anomalies, limit = 12 }: { anomalies: Anomaly[]; limit?: number }) {
  if (anomalies.length === 0) return <p className="muted">No anomalies. Everything looks normal.</p>;
  const sorted = [...anomalies].sort((a, b) => (RANK[a.severity] ?? 3) - (RANK[b.severity] ?? 3));
  return (
    <ul className="rows" aria-label="Anomalies">
      {sorted.slice(0, limit).map((a, i) => (
        <li key={`${a.kind}-${a.correlation_key}-${i}`}>
          <Row a={a} />
        </li>
      ))}
      {anomalies.length > limit && <li className="muted small">and {anomalies.length - limit} more</li>}
    </ul>
  );
}
