// The work-item drawer (`?task=KEY` on any view): the chain from plan session to test
// spec, each stage's status, proof, injection scan, verification and usage (notional
// dollars apart from spend), the agent's live console while one runs (`&console=1` opens
// it), the actions a person may
// propose and confirm, the aliases it absorbed, the timeline and the execution graph. The
// item itself stays live from the socket; the timeline, graph and actions are read again
// whenever the item changes.

import { useEffect, useRef, useState, type KeyboardEvent, type ReactNode } from 'react';
import { api, STAGES, STAGE_SERVICE, type Stage, type StageName, type UsageAmounts, type Verification, type WorkItem } from '../api';
import { SERVICE_LABEL, STAGE_LABEL, duration, keyLabel, money, notional, tokens, when } from '../format';
import { useLive } from '../live';
import { navigate, useLocation, withParams } from '../router';
import { useFetched } from '../useFetched';
import { AgentConsole } from './AgentConsole';
import { ItemActions } from './ItemActions';
import { ProcessGraph } from './ProcessGraph';
import { StageChip } from './StageChip';
import { ErrorNote, Loading, Panel } from './States';

/** The issue (repository-qualified when the repository is known) and the issues PFactory emitted for it. */
export function issueText(l: WorkItem['links']): string | null {
  const emitted = l.emitted_issues ?? [];
  const issue = l.issue_number !== null ? `${l.repo ?? ''}#${l.issue_number}` : (l.repo ?? null);
  const parts = [issue, emitted.length ? `emitted ${emitted.map((n) => `#${n}`).join(', ')}` : null].filter(Boolean);
  return parts.length ? parts.join(' · ') : null;
}

function Chain({ item }: { item: WorkItem }) {
  const l = item.links;
  const steps: { label: string; value: ReactNode }[] = [
    { label: 'Plan session', value: l.session_id },
    { label: 'Issue', value: issueText(l) },
    { label: 'Coding task', value: l.aifactory_task_ids.length ? l.aifactory_task_ids.join(', ') : null },
    {
      label: 'Branch / PR',
      value: l.branch || l.pr_number !== null ? [l.branch, l.pr_number !== null ? `PR #${l.pr_number}` : null].filter(Boolean).join(' · ') : null,
    },
    { label: 'Test spec', value: l.tfactory_spec_ids.length ? l.tfactory_spec_ids.join(', ') : null },
  ];
  return (
    <ol className="chain" aria-label="Chain from plan to test">
      {steps.map((s) => (
        <li key={s.label} className={s.value ? '' : 'chain-missing'}>
          <span className="chain-label">{s.label}</span>
          <code className="chain-value">{s.value ?? '—'}</code>
        </li>
      ))}
    </ol>
  );
}

/** A stage's usage: tokens, metered spend, and notional dollars apart (muted, never added to spend). */
export function UsageText({ usage: u }: { usage: UsageAmounts }) {
  const extra = notional(u.notional_cost_usd);
  if (u.total_tokens === 0 && u.cost_usd === 0 && !extra) return <>none reported</>;
  // A zero cost with tokens is unmetered usage, which never gets a dollar figure as spend.
  return (
    <>
      {u.cost_usd > 0 ? `${tokens(u.total_tokens)} tokens · ${money(u.cost_usd)}` : `${tokens(u.total_tokens)} tokens`}
      {extra && (
        <span className="muted small block" data-notional>
          {extra}
        </span>
      )}
    </>
  );
}

/** The trailing number of a level name (`VAL-2` → 2), to compare levels the run did not list. */
function levelNumber(level: string): number | null {
  const m = /(\d+)\s*$/.exec(level);
  return m ? Number(m[1]) : null;
}

/**
 * Whether the achieved level falls short of the target: by their order in `levels` when
 * both are listed there, else by their trailing numbers; no level achieved is short of
 * any target. `null` when it cannot be told.
 */
export function belowTarget(v: Verification): boolean | null {
  const target = v.target_level;
  const achieved = v.achieved_level;
  if (!target) return null;
  if (!achieved) return true;
  if (achieved === target) return false;
  const order = (v.levels ?? []).map((l) => l.level);
  const ai = order.indexOf(achieved);
  const ti = order.indexOf(target);
  if (ai >= 0 && ti >= 0) return ai < ti;
  const an = levelNumber(achieved);
  const tn = levelNumber(target);
  return an !== null && tn !== null ? an < tn : null;
}

/** "verified VAL-0 of target VAL-2", or what is known of it. */
export function verificationText(v: Verification): string {
  const achieved = v.achieved_level ? `verified ${v.achieved_level}` : 'no level verified';
  return v.target_level ? `${achieved} of target ${v.target_level}` : achieved;
}

const LEVEL_TONE: Record<string, string> = { passed: 'green', pass: 'green', verified: 'green', met: 'green', failed: 'red', fail: 'red', error: 'red' };

function VerificationNote({ v }: { v: Verification }) {
  const below = belowTarget(v);
  const levels = v.levels ?? [];
  return (
    <div className="verification small" data-verification={below === null ? 'unknown' : below ? 'below' : 'met'}>
      <span className={below ? 'warn' : ''}>{verificationText(v)}</span>
      {below && <span className="badge tone-amber">below target</span>}
      {(levels.length > 0 || v.claim) && (
        <details>
          <summary>Levels{v.claim ? ' and claim' : ''}</summary>
          {v.claim && <p className="verification-claim">{v.claim}</p>}
          {levels.length > 0 && (
            <ul className="verification-levels" aria-label="Verification levels">
              {levels.map((l) => (
                <li key={l.level} data-level={l.level}>
                  <code>{l.level}</code> <span className={`tone-${LEVEL_TONE[l.status.toLowerCase()] ?? 'grey'}`}>{l.status}</span>
                  {l.reason && <span className="muted">: {l.reason}</span>}
                </li>
              ))}
            </ul>
          )}
        </details>
      )}
    </div>
  );
}

function scanText(stage: Stage): string {
  const s = stage.injection_scan;
  if (!s) return 'no scan ran';
  return s.reason ? `${s.verdict}: ${s.reason}` : s.verdict;
}

function StageRows({ item }: { item: WorkItem }) {
  const active = item.liveness.active_stage;
  return (
    <table className="table stages">
      <caption className="sr-only">Each stage's status, proof, injection scan and usage</caption>
      <thead>
        <tr>
          <th scope="col">Stage</th>
          <th scope="col">Status</th>
          <th scope="col">Proof</th>
          <th scope="col">Injection scan</th>
          <th scope="col">Usage</th>
        </tr>
      </thead>
      <tbody>
        {STAGES.map((name: StageName) => {
          const stage = item.stages[name];
          return (
            <tr key={name} data-stage={name}>
              <th scope="row">
                {STAGE_LABEL[name]}
                <span className="muted small block">{SERVICE_LABEL[STAGE_SERVICE[name]]}</span>
              </th>
              <td>
                <StageChip name={name} stage={stage} stalled={item.liveness.stalled && active === name} />
                {stage && (
                  <span className="muted small block">
                    {stage.phase} · task {stage.task_id} · {when(stage.at)}
                  </span>
                )}
                {stage?.halt_reason && <span className="small block warn">halted: {stage.halt_reason}</span>}
                {stage?.review_reason && <span className="small block" data-review-reason={stage.review_reason}>waits for: {stage.review_reason.replace(/_/g, ' ')}</span>}
                {stage?.verification && <VerificationNote v={stage.verification} />}
              </td>
              <td>{stage ? stage.proof.replace('_', ' ') : '—'}</td>
              <td className={stage?.injection_scan?.verdict === 'flagged' ? 'warn' : ''}>{stage ? scanText(stage) : '—'}</td>
              <td>{stage ? <UsageText usage={stage.usage} /> : '—'}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function TimelineList({ k, version }: { k: string; version: number }) {
  const t = useFetched((signal) => api.timeline(k, signal), [k, version], { live: false });
  return (
    <Panel what="the timeline" data={t.data} error={t.error} onRetry={t.reload}>
      {(tl) => (
        <>
          <p className="muted small">
            {tl.event_count} events over {duration(tl.span_seconds)}
          </p>
          <ol className="timeline" aria-label="Timeline, oldest first">
            {tl.events.map((e) => (
              <li key={e.seq}>
                <time dateTime={e.time}>{when(e.time)}</time>
                <span>{SERVICE_LABEL[e.service] ?? e.service}</span>
                <span className="feed-status">{e.status}</span>
                <span className="muted small">task {e.task_id}</span>
              </li>
            ))}
          </ol>
        </>
      )}
    </Panel>
  );
}

function Graph({ k, version }: { k: string; version: number }) {
  const p = useFetched((signal) => api.process(k, signal), [k, version], { live: false });
  return (
    <Panel what="the execution graph" data={p.data} error={p.error} onRetry={p.reload}>
      {(g) =>
        g.available ? (
          g.nodes.length ? (
            <ProcessGraph nodes={g.nodes} label={`Execution graph of ${STAGE_LABEL[g.stage]} (${SERVICE_LABEL[g.service]} task ${g.task_id})`} />
          ) : (
            <p className="muted">The task reports no steps.</p>
          )
        ) : (
          <p className="muted">No graph: {g.reason}</p>
        )
      }
    </Panel>
  );
}

/**
 * The agent's console, offered while the item has a live one (and kept once opened, so
 * its end can be read). xterm.js loads only when it opens.
 */
function ConsoleSection({ k }: { k: string }) {
  const { params } = useLocation();
  const [open, setOpen] = useState(params.get('console') === '1');
  const live = useFetched((signal) => api.liveAgents(signal), [k]);
  const agent = live.data?.agents.find((a) => a.correlation_key === k) ?? null;
  if (!agent && !open) return null;
  return (
    <section aria-labelledby="d-console" data-live-console={agent ? 'live' : 'gone'}>
      <h3 id="d-console">Console</h3>
      {open ? (
        <AgentConsole k={k} />
      ) : (
        <p className="muted">
          {SERVICE_LABEL[agent?.service ?? ''] ?? agent?.service} task {agent?.task_id} is running.{' '}
          <button type="button" onClick={() => setOpen(true)}>
            Watch the agent’s console
          </button>
        </p>
      )}
    </section>
  );
}

function Body({ item }: { item: WorkItem }) {
  const version = item.event_count;
  return (
    <>
      <section aria-labelledby="d-chain">
        <h3 id="d-chain">Chain</h3>
        <Chain item={item} />
      </section>
      <section aria-labelledby="d-stages">
        <h3 id="d-stages">Stages</h3>
        <StageRows item={item} />
        <p className="muted small">
          {item.event_count} events · {tokens(item.usage_total.total_tokens)} tokens
          {item.usage_total.cost_usd > 0 && ` · ${money(item.usage_total.cost_usd)} metered`}
          {notional(item.usage_total.notional_cost_usd) && <span data-notional> · {notional(item.usage_total.notional_cost_usd)}, not spend</span>}
          {item.handbacks ? ` · ${item.handbacks} handback${item.handbacks > 1 ? 's' : ''}` : ''}
          {item.liveness.stalled && ' · stalled'}
        </p>
      </section>
      <ConsoleSection k={item.correlation_key} />
      <section aria-labelledby="d-actions">
        <h3 id="d-actions">Actions</h3>
        <ItemActions k={item.correlation_key} version={version} />
      </section>
      <section aria-labelledby="d-aliases">
        <h3 id="d-aliases">Aliases</h3>
        {item.aliases.length ? (
          <ul className="aliases">
            {item.aliases.map((a) => (
              <li key={a}>
                <code>{a}</code>
              </li>
            ))}
          </ul>
        ) : (
          <p className="muted">None: this item was never known by another key.</p>
        )}
      </section>
      <section aria-labelledby="d-graph">
        <h3 id="d-graph">Execution graph</h3>
        <Graph k={item.correlation_key} version={version} />
      </section>
      <section aria-labelledby="d-timeline">
        <h3 id="d-timeline">Timeline</h3>
        <TimelineList k={item.correlation_key} version={version} />
      </section>
    </>
  );
}

/** Newer of the socket's copy and the fetched one. */
function latest(a: WorkItem | undefined, b: WorkItem | null): WorkItem | null {
  if (!a) return b;
  if (!b) return a;
  return a.event_count >= b.event_count ? a : b;
}

export function Drawer({ taskKey }: { taskKey: string }) {
  const fetched = useFetched((signal) => api.workItem(taskKey, signal), [taskKey], { live: false });
  const canonical = fetched.data?.correlation_key ?? taskKey;
  const liveItem = useLive((s) => s.items.get(canonical));
  const item = latest(liveItem, fetched.data);
  const closeButton = useRef<HTMLButtonElement>(null);
  const panel = useRef<HTMLDivElement>(null);

  const close = () => navigate(withParams({ task: null, console: null }));

  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    closeButton.current?.focus();
    return () => before?.focus?.();
  }, []);

  // Keep focus inside the dialog: Tab from the last control wraps to the first.
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      close();
      return;
    }
    if (e.key !== 'Tab' || !panel.current) return;
    const focusable = panel.current.querySelectorAll<HTMLElement>('button:not([disabled]), a[href], input, select, textarea, summary, [tabindex="0"]');
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last?.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first?.focus();
    }
  };

  return (
    <div className="scrim" onMouseDown={(e) => e.target === e.currentTarget && close()}>
      <div ref={panel} className="drawer" role="dialog" aria-modal="true" aria-labelledby="drawer-title" onKeyDown={onKeyDown}>
        <header className="drawer-head">
          <div>
            <h2 id="drawer-title">
              <span className="key">{keyLabel(item?.correlation_key ?? taskKey)}</span> {item?.title ?? ''}
            </h2>
            {item?.project && <p className="muted small">{item.project}</p>}
          </div>
          <button ref={closeButton} type="button" className="secondary" onClick={close} aria-label="Close the work item">
            Close
          </button>
        </header>
        <div className="drawer-body">
          {item ? <Body item={item} /> : fetched.error ? <ErrorNote what={`work item ${taskKey}`} error={fetched.error} onRetry={fetched.reload} /> : <Loading what={`work item ${taskKey}`} />}
        </div>
      </div>
    </div>
  );
}
