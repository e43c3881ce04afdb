// Proactive insight cards (GET /api/insights), built by the server from anomalies and
// rollups without a model, most severe first. A card with a suggested action offers a
// button that prepares that proposal; the proposal then shows as a card of its own, to be
// confirmed or rejected like any other.

import { useState } from 'react';
import { canWrite, type InsightCard, type PreparedAction, type Severity } from '../api';
import { keyLabel } from '../format';
import { openTask } from '../router';
import { useSession } from '../session';
import { ProposalCard, ProposeButton } from './ProposalCard';

const RANK: Record<Severity, number> = { high: 0, warning: 1, info: 2 };
const TONE: Record<Severity, string> = { high: 'red', warning: 'amber', info: 'grey' };

interface CardProps {
  card: InsightCard;
  writable: boolean;
  proposal: PreparedAction | null;
  onProposed: (action: PreparedAction) => void;
}

function Card({ card, writable, proposal, onProposed }: CardProps) {
  const s = card.suggested;

  return (
    <li className="insight" data-insight={card.id} data-kind={card.kind}>
      <div className="insight-head">
        <span className={`badge tone-${TONE[card.severity] ?? 'grey'}`}>{card.severity}</span>
        <span className="insight-title">{card.title}</span>
        {card.correlation_key && (
          <button type="button" className="link" onClick={() => openTask(card.correlation_key as string)} aria-label={`Open work item ${card.correlation_key}`}>
            {keyLabel(card.correlation_key)}
          </button>
        )}
      </div>
      <p className="muted small">{card.detail}</p>
      {s && writable && !proposal && <ProposeButton kind={s.kind} correlationKey={s.correlation_key} label={s.label} onProposed={onProposed} />}
      {proposal && <ProposalCard action={proposal} headingLevel={3} />}
    </li>
  );
}

export function InsightCards({ cards, limit = 8 }: { cards: InsightCard[]; limit?: number }) {
  const writable = canWrite(useSession());
  // Proposals made from a card, by card id. A card the server no longer lists (the item
  // moved on, often because of the action) stays while its proposal is shown.
  const [proposed, setProposed] = useState<Record<string, { card: InsightCard; action: PreparedAction }>>({});
  const sorted = [...cards].sort((a, b) => (RANK[a.severity] ?? 3) - (RANK[b.severity] ?? 3)).slice(0, limit);
  const shownIds = new Set(sorted.map((c) => c.id));
  const kept = Object.values(proposed)
    .filter((p) => !shownIds.has(p.card.id))
    .map((p) => p.card);
  const all = [...kept, ...sorted];
  if (all.length === 0) return <p className="muted">Nothing to point out right now.</p>;
  return (
    <ul className="rows insights" aria-label="Insights">
      {all.map((c) => (
        <Card
          key={c.id}
          card={c}
          writable={writable}
          proposal={proposed[c.id]?.action ?? null}
          onProposed={(action) => setProposed((p) => ({ ...p, [c.id]: { card: c, action } }))}
        />
      ))}
      {cards.length > limit && <li className="muted small">and {cards.length - limit} more</li>}
    </ul>
  );
}
