// The drawer's actions: one button per kind the server says fits the item now (with an
// optional note), each preparing a proposal shown as a card to confirm or reject; the
// item's pending proposals; and its earlier actions with how they ended. Without the
// write scope there is nothing to press, only the history.

import { useState } from 'react';
import { api, canWrite, type ActionKind, type PreparedAction } from '../api';
import { actionLabel, when } from '../format';
import { useSession } from '../session';
import { useFetched } from '../useFetched';
import { ActionStatusBadge, ProposalCard, reasonOf } from './ProposalCard';
import { Panel } from './States';

function History({ actions }: { actions: PreparedAction[] }) {
  if (actions.length === 0) return null;
  return (
    <table className="table actions-history">
      <caption>Earlier actions, newest first</caption>
      <thead>
        <tr>
          <th scope="col">Action</th>
          <th scope="col">Status</th>
          <th scope="col">Request</th>
          <th scope="col">Proposed</th>
        </tr>
      </thead>
      <tbody>
        {actions.map((a) => {
          const failed = a.results.find((r) => !r.ok);
          return (
            <tr key={a.id} data-action-id={a.id}>
              <th scope="row">
                {actionLabel(a.kind)}
                <code className="muted small block">{a.id}</code>
              </th>
              <td>
                <ActionStatusBadge status={a.status} />
                {failed?.error && <span className="small block">{failed.error}</span>}
              </td>
              <td>
                <code className="small">
                  {a.method} {a.endpoint}
                </code>
                {a.follow_ups.length > 0 && <span className="muted small block">and {a.follow_ups.length} more</span>}
              </td>
              <td className="small">
                {when(a.created_at)}
                <span className="muted block">by {a.proposed_by}</span>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function ItemActions({ k, version }: { k: string; version: number }) {
  const writable = canWrite(useSession());
  const fetched = useFetched((signal) => api.itemActions(k, signal), [k, version], { live: false });
  const [note, setNote] = useState('');
  const [proposing, setProposing] = useState<ActionKind | null>(null);
  const [error, setError] = useState<string | null>(null);
  /** Proposals made here, newest first: they stay as cards so their outcome stays in view. */
  const [mine, setMine] = useState<PreparedAction[]>([]);
  const noteId = `note-${k}`;

  const propose = async (kind: ActionKind) => {
    setProposing(kind);
    setError(null);
    try {
      const action = await api.propose({ kind, correlation_key: k, ...(note.trim() ? { note: note.trim() } : {}) });
      setMine((m) => [action, ...m.filter((x) => x.id !== action.id)]);
      setNote('');
    } catch (e) {
      setError(`${actionLabel(kind)} was refused: ${reasonOf(e)}`);
    } finally {
      setProposing(null);
      fetched.reload();
    }
  };

  return (
    <Panel what="the actions" data={fetched.data} error={fetched.error} onRetry={fetched.reload}>
      {({ available, actions }) => {
        const listed = new Map(actions.map((a) => [a.id, a]));
        const mineIds = new Set(mine.map((a) => a.id));
        // A proposal made here shows the list's copy when that one is further along.
        const cards = [...mine.map((a) => listed.get(a.id) ?? a), ...actions.filter((a) => !mineIds.has(a.id) && (a.status === 'prepared' || a.status === 'executing'))];
        const cardIds = new Set(cards.map((a) => a.id));
        const past = actions.filter((a) => !cardIds.has(a.id));
        return (
          <>
            {writable ? (
              available.length > 0 ? (
                <div className="propose" role="group" aria-label="Propose an action">
                  <label htmlFor={noteId} className="small muted">
                    Note for the proposal (optional)
                  </label>
                  <textarea id={noteId} rows={2} value={note} onChange={(e) => setNote(e.target.value)} placeholder="Why, or what to fix" maxLength={4000} />
                  <div className="propose-buttons">
                    {available.map((kind) => (
                      <button key={kind} type="button" className="secondary" data-kind={kind} disabled={proposing !== null} onClick={() => propose(kind)}>
                        {proposing === kind ? 'Preparing…' : `Propose: ${actionLabel(kind)}`}
                      </button>
                    ))}
                  </div>
                  <p className="muted small">A proposal shows the exact request first; nothing is sent until you confirm it.</p>
                </div>
              ) : (
                <p className="muted">No action fits this item's state now.</p>
              )
            ) : (
              <p className="muted">Proposing and confirming actions needs the write scope.</p>
            )}
            {error && (
              <p className="note note-error" role="alert">
                {error}
              </p>
            )}
            {cards.length > 0 && (
              <div className="proposals" aria-label="Proposals for this item" role="group">
                {cards.map((a) => (
                  <ProposalCard key={a.id} action={a} onChange={fetched.reload} />
                ))}
              </div>
            )}
            <History actions={past} />
            {cards.length === 0 && past.length === 0 && <p className="muted small">No actions on this item yet.</p>}
          </>
        );
      }}
    </Panel>
  );
}
