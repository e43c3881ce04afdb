// Needs you: the work items waiting on a person, each with every reason it waits, and the
// proposal that answers a reason where one fits (approve a plan, recover a stuck task,
// kick a handback). A proposal is prepared on a click and shown as a card; nothing is sent
// until a person confirms it there, as on Mission Control's insight cards.

import { useId, useState } from 'react';
import { api, canWrite, type ActionKind, type NeedsYouItem, type PreparedAction } from '../api';
import { ProposalCard, ProposeButton } from '../components/ProposalCard';
import { Panel } from '../components/States';
import { keyLabel } from '../format';
import { openTask } from '../router';
import { useSession } from '../session';
import { useFetched } from '../useFetched';

/**
 * Which proposal answers which reason. The server words each reason `{stage}: {what}`
 * (crates/domain/src/insights/needs.rs); a reason no row matches offers nothing.
 */
const ANSWERS: { says: RegExp; kind: ActionKind; label: string }[] = [
  // PFactory's plan, or TFactory's test plan, waiting at its approval gate.
  { says: /^(plan: plan awaiting approval|test: in review \(awaiting_approval\))$/, kind: 'approve_gate', label: 'Propose: approve the plan' },
  // Recover resets an AIFactory task, so only the code stage's stall or stop fits it.
  { says: /^code: (stalled|stuck) \(/, kind: 'recover', label: 'Propose: recover the task' },
  // TFactory stopped for a person: AIFactory gets a correction built from its verdict.
  { says: /^test: a person must review \(/, kind: 'kick_handback', label: 'Propose: kick a handback' },
];

/** The proposals that fit an item's reasons, most urgent reason first, each kind once. */
export function answersFor(reasons: string[]): { kind: ActionKind; label: string }[] {
  const found = reasons.flatMap((r) => ANSWERS.filter((a) => a.says.test(r)));
  return found.filter((a, i) => found.findIndex((b) => b.kind === a.kind) === i).map(({ kind, label }) => ({ kind, label }));
}

interface RowProps {
  item: NeedsYouItem;
  /** Whether the server still lists the item; a row kept for its proposal offers no more. */
  listed: boolean;
  writable: boolean;
  proposals: PreparedAction[];
  /** Called with a proposal made or decided here, and after a refused decision with nothing. */
  onAction: (action?: PreparedAction) => void;
}

function Row({ item, listed, writable, proposals, onAction }: RowProps) {
  const titleId = useId();
  // A kind is offered again once its proposal was rejected or ran.
  const pending = new Set(proposals.filter((p) => p.status === 'prepared' || p.status === 'executing').map((p) => p.kind));
  const answers = writable && listed ? answersFor(item.reasons).filter((a) => !pending.has(a.kind)) : [];
  return (
    <li data-key={item.correlation_key}>
      <button type="button" className="row-button" onClick={() => openTask(item.correlation_key)}>
        <span className="row-main">
          <span id={titleId}>
            <span className="key">{keyLabel(item.correlation_key)}</span> {item.title}
          </span>
          <span className="reasons">
            {item.reasons.map((r) => (
              <span key={r} className="badge tone-amber">
                {r}
              </span>
            ))}
          </span>
        </span>
      </button>
      {answers.length > 0 && (
        <div className="needs-answers">
          {answers.map((a) => (
            <ProposeButton key={a.kind} kind={a.kind} correlationKey={item.correlation_key} label={a.label} onProposed={onAction} describedBy={titleId} />
          ))}
        </div>
      )}
      {proposals.map((p) => (
        <ProposalCard key={p.id} action={p} headingLevel={3} onChange={onAction} />
      ))}
    </li>
  );
}

export function NeedsYou() {
  const writable = canWrite(useSession());
  const needs = useFetched((signal) => api.needsYou(signal), []);
  // Proposals made here, by item. An item the server no longer lists (often because of
  // the action) stays while its proposal is shown, so the outcome stays in view.
  const [proposed, setProposed] = useState<Record<string, { item: NeedsYouItem; actions: PreparedAction[] }>>({});
  const record = (item: NeedsYouItem) => (action?: PreparedAction) => {
    if (action) {
      setProposed((p) => {
        const before = p[item.correlation_key]?.actions ?? [];
        const actions = before.some((a) => a.id === action.id) ? before.map((a) => (a.id === action.id ? action : a)) : [...before, action];
        return { ...p, [item.correlation_key]: { item, actions } };
      });
    }
    // A decision may have moved the item on; a refusal may mean someone else decided.
    if (!action || action.status !== 'prepared') needs.reload();
  };
  return (
    <section className="view" aria-labelledby="needs-title">
      <div className="view-head">
        <h1 id="needs-title">Needs you</h1>
        {needs.data && <span className="muted">{needs.data.count} waiting</span>}
      </div>
      <Panel what="the items that need you" data={needs.data} error={needs.error} onRetry={needs.reload}>
        {({ items }) => {
          const listed = new Set(items.map((n) => n.correlation_key));
          const kept = Object.values(proposed)
            .filter((p) => !listed.has(p.item.correlation_key))
            .map((p) => p.item);
          const rows = [...kept, ...items];
          return rows.length === 0 ? (
            <p className="muted panel">Nothing needs you right now.</p>
          ) : (
            <>
              {writable && rows.some((n) => answersFor(n.reasons).length > 0) && (
                <p className="muted small">A proposal shows the exact request first; nothing is sent until you confirm it.</p>
              )}
              <ul className="rows panel needs" aria-label="Work items waiting on a person">
                {rows.map((n) => (
                  <Row key={n.correlation_key} item={n} listed={listed.has(n.correlation_key)} writable={writable} proposals={proposed[n.correlation_key]?.actions ?? []} onAction={record(n)} />
                ))}
              </ul>
            </>
          );
        }}
      </Panel>
    </section>
  );
}
