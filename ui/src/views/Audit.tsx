// Audit: the tenant's HMAC-chained log of every confirm, reject and expiry, service-URL
// change and key change, newest first and paged by cursor, under the verdict of a walk
// over the whole chain. A tampered or forked chain is red and names the rows at fault,
// which are marked in the table too. Read on opening and on Refresh, not on every change.

import { useState } from 'react';
import { api, type AuditChain, type AuditEntry } from '../api';
import { openTask } from '../router';
import { ErrorNote, Panel } from '../components/States';
import { count, keyLabel, when } from '../format';
import { useFetched } from '../useFetched';

/** Entries per page. */
const PAGE = 50;

const FINDING_TEXT: Record<string, string> = {
  altered: 'the row no longer matches its seal',
  broken_link: 'rows before it were deleted or edited',
  fork: 'two rows claim its place in the chain',
  truncated: 'the head counts rows that are gone after it',
  head_altered: 'the chain head was altered',
};

function Verdict({ chain }: { chain: AuditChain }) {
  const ok = chain.verdict === 'ok';
  return (
    <div className={`verdict ${ok ? 'verdict-ok' : 'verdict-bad'}`} data-verdict={chain.verdict}>
      <p>
        <span className={`badge badge-lg tone-${ok ? 'green' : 'red'}`}>{ok ? 'chain ok' : `chain ${chain.verdict}`}</span>{' '}
        {ok ? `All ${count(chain.rows)} rows match their seals and links.` : `${count(chain.rows)} rows checked; ${chain.findings.length} finding${chain.findings.length === 1 ? '' : 's'}.`}
      </p>
      {chain.findings.length > 0 && (
        <ul className="findings" aria-label="Findings">
          {chain.findings.map((f, i) => (
            <li key={`${f.id}-${f.kind}-${i}`} data-finding-id={f.id} data-finding-kind={f.kind}>
              Row <strong>{f.id}</strong>: <code>{f.kind}</code> ({FINDING_TEXT[f.kind] ?? 'see cfactory audit verify'})
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function resultText(e: AuditEntry): string {
  const code = e.status_code !== null && e.status_code !== undefined ? `HTTP ${e.status_code}` : null;
  const ok = e.ok === null || e.ok === undefined ? null : e.ok ? 'ok' : 'failed';
  return [ok, code].filter(Boolean).join(' · ') || '—';
}

function Entries({ entries, flagged }: { entries: AuditEntry[]; flagged: Map<number, string[]> }) {
  return (
    <div className="table-scroll" role="region" aria-label="Audit entries" tabIndex={0}>
      <table className="table audit">
        <caption className="sr-only">Audit entries, newest first</caption>
        <thead>
          <tr>
            <th scope="col" className="num">
              Seq
            </th>
            <th scope="col">When</th>
            <th scope="col">Actor</th>
            <th scope="col">Kind</th>
            <th scope="col">Work item</th>
            <th scope="col">Request</th>
            <th scope="col">Result</th>
            <th scope="col">Action</th>
            <th scope="col">Entry hash</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => {
            const findings = flagged.get(e.id);
            return (
              <tr key={e.id} data-audit-id={e.id} data-action-id={e.action_id ?? undefined} data-finding={findings ? findings.join(' ') : undefined} className={findings ? 'flagged' : undefined}>
                <td className="num">
                  {e.seq}
                  {findings && <span className="badge tone-red block-badge">{findings.join(', ')}</span>}
                </td>
                <td className="small">{when(e.at)}</td>
                <td>
                  <code className="small">{e.actor}</code>
                </td>
                <td>
                  <code className="small">{e.kind}</code>
                </td>
                <td>
                  {e.correlation_key ? (
                    <button type="button" className="link" onClick={() => openTask(e.correlation_key as string)}>
                      {keyLabel(e.correlation_key)}
                    </button>
                  ) : (
                    '—'
                  )}
                </td>
                <td className="small">
                  {e.target && <span className="block">{e.target}</span>}
                  {e.method || e.endpoint ? (
                    <code>
                      {e.method} {e.endpoint}
                    </code>
                  ) : (
                    !e.target && '—'
                  )}
                </td>
                <td className={`small ${e.ok === false ? 'warn' : ''}`}>{resultText(e)}</td>
                <td>{e.action_id ? <code className="small">{e.action_id}</code> : '—'}</td>
                <td>
                  <code className="small" title={e.entry_hash}>
                    {e.entry_hash.slice(0, 12)}…
                  </code>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

type Page = { entries: AuditEntry[]; next_cursor: string | null };

export function Audit() {
  const chain = useFetched((signal) => api.auditChain(signal), [], { live: false });
  const first = useFetched((signal) => api.audit({ limit: PAGE }, signal), [], { live: false });
  // Older pages loaded after `base` (the first page they follow); a new first page drops them.
  const [extra, setExtra] = useState<{ base: Page; entries: AuditEntry[]; next: string | null } | null>(null);
  const [loading, setLoading] = useState(false);
  const [moreError, setMoreError] = useState<Error | null>(null);

  const page = first.data;
  const added = extra && extra.base === page ? extra : null;
  const entries = page ? [...page.entries, ...(added?.entries ?? [])] : [];
  const next = added ? added.next : (page?.next_cursor ?? null);

  const flagged = new Map<number, string[]>();
  for (const f of chain.data?.findings ?? []) flagged.set(f.id, [...(flagged.get(f.id) ?? []), f.kind]);

  const loadMore = async () => {
    if (!page || !next) return;
    setLoading(true);
    setMoreError(null);
    try {
      const older = await api.audit({ limit: PAGE, cursor: next });
      setExtra({ base: page, entries: [...(added?.entries ?? []), ...older.entries], next: older.next_cursor });
    } catch (e) {
      setMoreError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setLoading(false);
    }
  };

  const refresh = () => {
    chain.reload();
    first.reload();
  };

  return (
    <section className="view" aria-labelledby="audit-title">
      <div className="view-head">
        <h1 id="audit-title">Audit</h1>
        <button type="button" className="secondary" onClick={refresh}>
          Refresh
        </button>
      </div>
      <section className="panel" aria-labelledby="audit-chain">
        <h2 id="audit-chain">Chain verdict</h2>
        <Panel what="the chain verdict" data={chain.data} error={chain.error} onRetry={chain.reload}>
          {(c) => <Verdict chain={c} />}
        </Panel>
      </section>
      <section className="panel" aria-labelledby="audit-entries">
        <h2 id="audit-entries">Entries</h2>
        <Panel what="the audit log" data={page} error={first.error} onRetry={first.reload}>
          {() =>
            entries.length === 0 ? (
              <p className="muted">Nothing audited yet: confirms, rejects, expiries, service-URL and key changes appear here.</p>
            ) : (
              <>
                <Entries entries={entries} flagged={flagged} />
                <p className="muted small" role="status">
                  {entries.length} entr{entries.length === 1 ? 'y' : 'ies'} shown{next ? '' : ', the whole log'}.
                </p>
                {moreError && <ErrorNote what="older entries" error={moreError} onRetry={loadMore} />}
                {next && (
                  <button type="button" className="secondary" onClick={loadMore} disabled={loading}>
                    {loading ? 'Loading…' : 'Load older entries'}
                  </button>
                )}
              </>
            )
          }
        </Panel>
      </section>
    </section>
  );
}
