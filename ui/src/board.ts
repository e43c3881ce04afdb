// Which column a WorkItem sits in and whether it passes the board's filters. The board
// filters on the client: it holds every item anyway (live frames keep it current), and a
// filter then answers as fast as a key press.

import { STAGES, STAGE_SERVICE, type ServiceName, type StageName, type StatusClass, type WorkItem } from './api';

/** The board's filters; the stage filter picks columns rather than items. */
export interface BoardFilters {
  status: StatusClass | null;
  service: ServiceName | null;
  text: string;
}

/** The furthest stage that has started; items with none yet wait in Plan. */
export function columnOf(item: WorkItem): StageName {
  for (let i = STAGES.length - 1; i >= 0; i--) {
    const name = STAGES[i] as StageName;
    if (item.stages[name]) return name;
  }
  return 'plan';
}

/** The status class of the furthest started stage. */
function classOf(item: WorkItem): StatusClass | null {
  return item.stages[columnOf(item)]?.status_class ?? null;
}

function haystack(item: WorkItem): string {
  const l = item.links;
  return [
    item.correlation_key,
    ...item.aliases,
    item.title,
    item.project,
    l.branch,
    l.session_id,
    l.repo,
    l.issue_number,
    ...(l.emitted_issues ?? []),
    l.pr_number,
    ...l.aifactory_task_ids,
    ...l.tfactory_spec_ids,
  ]
    .filter((v) => v !== null && v !== undefined)
    .join('\n')
    .toLowerCase();
}

export function matches(item: WorkItem, f: BoardFilters): boolean {
  if (f.status && classOf(item) !== f.status) return false;
  if (f.service && !STAGES.some((s) => STAGE_SERVICE[s] === f.service && item.stages[s])) return false;
  const text = f.text.trim().toLowerCase();
  return !text || haystack(item).includes(text);
}

/** The board's columns: filtered items per stage, most recently changed first. */
export function columns(items: Iterable<WorkItem>, f: BoardFilters): Record<StageName, WorkItem[]> {
  const out: Record<StageName, WorkItem[]> = { plan: [], code: [], test: [] };
  for (const item of items) {
    if (matches(item, f)) out[columnOf(item)].push(item);
  }
  for (const s of STAGES) out[s].sort((a, b) => (a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : 0));
  return out;
}
