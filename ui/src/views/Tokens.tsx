// Tokens and cost: totals, the daily series, and the breakdowns by service, model, work
// item and billing mode. Dollars appear only where usage was metered.

import { Suspense, lazy } from 'react';
import { api } from '../api';
import { CostTable, costText } from '../components/CostTable';
import { Panel } from '../components/States';
import { SERVICE_LABEL, tokens } from '../format';
import { useFetched } from '../useFetched';

const DailyChart = lazy(() => import('../components/DailyChart'));

export function TokensView() {
  const t = useFetched((signal) => api.tokens(signal), []);
  return (
    <section className="view" aria-labelledby="tokens-title">
      <div className="view-head">
        <h1 id="tokens-title">Tokens &amp; cost</h1>
      </div>
      <Panel what="tokens and cost" data={t.data} error={t.error} onRetry={t.reload}>
        {({ cost, daily }) => (
          <>
            <div className="tiles">
              <div className="tile">
                <span className="tile-label">Spend (metered)</span>
                <span className="tile-value">{costText(cost.total)}</span>
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
