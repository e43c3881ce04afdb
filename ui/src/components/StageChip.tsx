// One stage's status as a coloured chip. Green means done *and* proven: a success that
// lacks its evidence is amber and says "unproven" (RFC-0001a), never green. A TFactory
// outcome names its verdict (`human_review`: review, `failure`: failed) on the chip.

import type { Stage, StageName } from '../api';
import { STAGE_LABEL } from '../format';

export type Tone = 'green' | 'amber' | 'red' | 'orange' | 'blue' | 'violet' | 'grey';

export interface ChipLook {
  tone: Tone;
  /** The status as shown, with the qualifier (unproven, stalled) when there is one. */
  text: string;
}

/** `status`, with `verdict` added when the status does not already say it (`triaged · human review`). */
function withVerdict(status: string, verdict: string, says: RegExp): string {
  return says.test(status) ? status : `${status} · ${verdict}`;
}

/** How a stage reads; `stalled` is the item's liveness verdict for its active stage. */
export function stageLook(stage: Stage | null, stalled = false): ChipLook {
  if (!stage) return { tone: 'grey', text: 'not started' };
  // TFactory keeps its status (`triaged`) whatever the verdict; the outcome carries it.
  const outcome = stage.outcome?.trim().toLowerCase();
  if (outcome === 'failure') return { tone: 'red', text: withVerdict(stage.status, 'failed', /fail/i) };
  if (stage.status_class === 'failed') return { tone: 'red', text: stage.status };
  if (outcome === 'human_review') return { tone: 'violet', text: withVerdict(stage.status, 'human review', /review/i) };
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
  /** The item's active stage: its chip keeps its width while the others give way. */
  active?: boolean;
}

/**
 * A chip too narrow for its status (a narrow column, the copilot open) cuts it with an
 * ellipsis; the whole status stays in the title on hover and in the text screen readers
 * read, which is the only copy they read.
 */
export function StageChip({ name, stage, stalled = false, active = false }: Props) {
  const look = stageLook(stage, stalled);
  const full = `${STAGE_LABEL[name]}: ${look.text}`;
  return (
    <span className={`chip tone-${look.tone}`} data-tone={look.tone} data-active={active || undefined} title={full}>
      <span className="chip-stage" aria-hidden="true">
        {STAGE_LABEL[name]}
      </span>
      <span className="chip-text" aria-hidden="true">
        {look.text}
      </span>
      <span className="sr-only">{full}</span>
    </span>
  );
}
