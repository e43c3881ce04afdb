// One stage's status as a coloured chip. Green means done *and* proven: a success that
// lacks its evidence is amber and says "unproven" (RFC-0001a), never green.

import type { Stage, StageName } from '../api';
import { STAGE_LABEL } from '../format';

export type Tone = 'green' | 'amber' | 'red' | 'orange' | 'blue' | 'violet' | 'grey';

export interface ChipLook {
  tone: Tone;
  /** The status as shown, with the qualifier (unproven, stalled) when there is one. */
  text: string;
}

/** How a stage reads; `stalled` is the item's liveness verdict for its active stage. */
export function stageLook(stage: Stage | null, stalled = false): ChipLook {
  if (!stage) return { tone: 'grey', text: 'not started' };
  const failed = stage.status_class === 'failed' || stage.outcome?.toLowerCase() === 'failure';
  if (failed) return { tone: 'red', text: stage.status };
  switch (stage.status_class) {
    case 'done':
      return stage.proof === 'proven'
        ? { tone: 'green', text: stage.status }
        : { tone: 'amber', text: `${stage.status} · unproven` };
    case 'stuck':
      return { tone: 'orange', text: stage.status };
    case 'review':
      return { tone: 'violet', text: stage.status };
    case 'queued':
      return { tone: 'grey', text: stage.status };
    default:
      return stalled ? { tone: 'orange', text: `${stage.status} · stalled` } : { tone: 'blue', text: stage.status };
  }
}

interface Props {
  name: StageName;
  stage: Stage | null;
  stalled?: boolean;
}

export function StageChip({ name, stage, stalled = false }: Props) {
  const look = stageLook(stage, stalled);
  return (
    <span className={`chip tone-${look.tone}`} data-tone={look.tone} title={`${STAGE_LABEL[name]}: ${look.text}`}>
      <span className="chip-stage">{STAGE_LABEL[name]}</span>
      <span className="sr-only">: </span>
      {look.text}
    </span>
  );
}
