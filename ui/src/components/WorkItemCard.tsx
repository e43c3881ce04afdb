// A WorkItem on the board: its key, title and each stage's chip. The whole card is one
// button that opens the drawer.

import { memo } from 'react';
import { STAGES, type WorkItem } from '../api';
import { keyLabel } from '../format';
import { openTask } from '../router';
import { StageChip } from './StageChip';

// Memoised: while a column scrolls, the cards that stay in view keep the same item and
// need no new render.
export const WorkItemCard = memo(function WorkItemCard({ item }: { item: WorkItem }) {
  const active = item.liveness.active_stage;
  return (
    <button type="button" className="card" onClick={() => openTask(item.correlation_key)}>
      <span className="card-head">
        <span className="key">{keyLabel(item.correlation_key)}</span>
        {item.project && <span className="muted card-project">{item.project}</span>}
      </span>
      <span className="card-title">{item.title ?? <em className="muted">untitled</em>}</span>
      <span className="chips">
        {STAGES.map((s) => (
          <StageChip key={s} name={s} stage={item.stages[s]} stalled={item.liveness.stalled && active === s} active={active === s} />
        ))}
      </span>
    </button>
  );
});
