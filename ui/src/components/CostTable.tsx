// Cost and tokens per group. A group that never sent usage reads "not instrumented" (no
// data is not zero), and one whose usage was never metered (subscription or local runs)
// shows its tokens and no dollar figure as spend. Dollars such workers report are
// notional: they get a column of their own, shown only when some group has them, and are
// never added to the cost.

import type { CostBucket } from '../api';
import { keyLabel, money, tokens } from '../format';
import { openTask } from '../router';

/** The cost cell's text: dollars only for metered usage. */
export function costText(b: CostBucket): string {
  if (!b.instrumented) return 'not instrumented';
  if (!b.metered || b.cost_usd === null) return 'not metered';
  return money(b.cost_usd);
}

/** Whether a bucket carries notional dollars (older servers never send them). */
export function hasNotional(b: CostBucket): boolean {
  return typeof b.notional_cost_usd === 'number' && b.notional_cost_usd > 0;
}

interface Props {
  caption: string;
  /** Header of the first column. */
  groupLabel: string;
  buckets: CostBucket[];
  /** Rows shown; the rest are summarised. */
  limit?: number;
  /** Whether keys are WorkItem keys (they then open the drawer). */
  workItems?: boolean;
  labelOf?: (key: string) => string;
}

export function CostTable({ caption, groupLabel, buckets, limit = 50, workItems = false, labelOf = (k) => k }: Props) {
  if (buckets.length === 0) return <p className="muted">No usage reported for {caption.toLowerCase()}.</p>;
  const rows = buckets.slice(0, limit);
  const notional = buckets.some(hasNotional);
  return (
    <table className="table">
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col">{groupLabel}</th>
          <th scope="col" className="num">
            Tokens
          </th>
          <th scope="col" className="num">
            In / out
          </th>
          <th scope="col" className="num">
            Cost
          </th>
          {notional && (
            <th scope="col" className="num" title="Dollars reported by subscription or local workers: never part of spend">
              Notional <span className="sr-only">dollars, not spend</span>
            </th>
          )}
        </tr>
      </thead>
      <tbody>
        {rows.map((b) => (
          <tr key={b.key} data-instrumented={b.instrumented} data-metered={b.metered}>
            <th scope="row">
              {workItems ? (
                <button type="button" className="link" onClick={() => openTask(b.key)}>
                  {keyLabel(b.key)}
                </button>
              ) : (
                labelOf(b.key)
              )}
            </th>
            <td className="num">{tokens(b.total_tokens)}</td>
            <td className="num">{b.instrumented ? `${tokens(b.input_tokens)} / ${tokens(b.output_tokens)}` : '—'}</td>
            <td className={`num ${b.instrumented && b.metered ? '' : 'muted'}`}>{costText(b)}</td>
            {notional && (
              <td className="num muted" data-notional>
                {hasNotional(b) ? money(b.notional_cost_usd as number) : '—'}
              </td>
            )}
          </tr>
        ))}
      </tbody>
      {buckets.length > rows.length && (
        <tfoot>
          <tr>
            <td colSpan={notional ? 5 : 4} className="muted">
              and {buckets.length - rows.length} more
            </td>
          </tr>
        </tfoot>
      )}
    </table>
  );
}
