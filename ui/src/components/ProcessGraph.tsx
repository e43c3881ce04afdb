// An execution graph as SVG: nodes laid out in columns by dependency depth, lit by
// status, with an arrow from each dependency to the node that waits on it. A text list
// beside it says the same for screen readers.

import type { ProcessNode } from '../api';
import type { Tone } from './StageChip';

const W = 168;
const H = 44;
const GAP_X = 56;
const GAP_Y = 16;
const PAD = 12;

/** The tone of an upstream's node status (their spellings vary; match by word). */
function nodeTone(status: string): Tone {
  const words = status.toLowerCase().split(/[\s_-]+/);
  const has = (...w: string[]) => w.some((x) => words.includes(x));
  if (has('failed', 'fail', 'failure', 'error', 'errored', 'rejected', 'cancelled', 'canceled')) return 'red';
  if (has('completed', 'complete', 'done', 'passed', 'pass', 'success', 'succeeded', 'merged', 'accepted')) return 'green';
  if (has('stuck', 'blocked')) return 'orange';
  if (has('review', 'approval')) return 'violet';
  if (has('pending', 'queued', 'backlog', 'waiting', 'todo', 'not')) return 'grey';
  return 'blue';
}

/** Each node's column: the length of its longest chain of dependencies (cycles cut). */
function depths(nodes: ProcessNode[]): Map<string, number> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (id: string): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const deps = byId.get(id)?.deps.filter((d) => byId.has(d)) ?? [];
    const d = deps.length === 0 ? 0 : 1 + Math.max(...deps.map(visit));
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  nodes.forEach((n) => visit(n.id));
  return depth;
}

export function ProcessGraph({ nodes, label }: { nodes: ProcessNode[]; label: string }) {
  const depth = depths(nodes);
  const rowsUsed: number[] = [];
  const pos = new Map<string, { x: number; y: number }>();
  for (const n of nodes) {
    const col = depth.get(n.id) ?? 0;
    const row = rowsUsed[col] ?? 0;
    rowsUsed[col] = row + 1;
    pos.set(n.id, { x: PAD + col * (W + GAP_X), y: PAD + row * (H + GAP_Y) });
  }
  const width = PAD * 2 + rowsUsed.length * (W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, ...rowsUsed) * (H + GAP_Y) - GAP_Y;
  const byId = new Map(nodes.map((n) => [n.id, n]));

  return (
    <div className="graph" role="group" aria-label={label} tabIndex={0}>
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} aria-hidden="true" focusable="false">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" className="edge-head" />
          </marker>
        </defs>
        {nodes.flatMap((n) =>
          n.deps
            .filter((d) => byId.has(d))
            .map((d) => {
              const a = pos.get(d);
              const b = pos.get(n.id);
              if (!a || !b) return null;
              const x1 = a.x + W;
              const y1 = a.y + H / 2;
              const x2 = b.x;
              const y2 = b.y + H / 2;
              const mid = (x1 + x2) / 2;
              return <path key={`${d}->${n.id}`} className="edge" data-edge={`${d}->${n.id}`} d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 2},${y2}`} markerEnd="url(#arrow)" />;
            }),
        )}
        {nodes.map((n) => {
          const p = pos.get(n.id);
          if (!p) return null;
          const tone = nodeTone(n.status);
          return (
            <g key={n.id} transform={`translate(${p.x},${p.y})`} className={`node tone-${tone}`} data-node={n.id} data-tone={tone}>
              <rect width={W} height={H} rx={6} />
              <text x={10} y={18} className="node-label">
                {n.label.length > 22 ? `${n.label.slice(0, 21)}…` : n.label}
              </text>
              <text x={10} y={34} className="node-status">
                {n.status}
              </text>
            </g>
          );
        })}
      </svg>
      <ul className="sr-only">
        {nodes.map((n) => (
          <li key={n.id}>
            {n.label}: {n.status}
            {n.deps.length > 0 && `, after ${n.deps.map((d) => byId.get(d)?.label ?? d).join(', ')}`}
          </li>
        ))}
      </ul>
    </div>
  );
}
