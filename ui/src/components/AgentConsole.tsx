// A work item's live agent console: xterm.js (loaded on first open) fed by the server's
// read-only relay of the agent's terminal. Shows whether it is connecting, live or closed,
// why it closed, and offers to connect again.

import { useEffect, useRef, useState } from 'react';
import { consoleUrl, describeClose, type ConsoleEnd } from '../agentConsole';
import { keyLabel } from '../format';
import type { TerminalHandle } from './terminal';

const TONE: Record<ConsoleEnd['tone'], string> = { muted: 'muted', warn: 'warn', error: 'tone-red' };

type Phase = { state: 'loading' } | { state: 'connecting' } | { state: 'live' } | { state: 'closed'; end: ConsoleEnd } | { state: 'broken'; error: string };

function Session({ k, onRetry }: { k: string; onRetry: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const [phase, setPhase] = useState<Phase>({ state: 'loading' });

  useEffect(() => {
    let gone = false;
    let socket: WebSocket | null = null;
    let term: TerminalHandle | null = null;
    import('./terminal').then(
      ({ openTerminal }) => {
        if (gone || !host.current) return;
        const t = openTerminal(host.current);
        term = t;
        const s = new WebSocket(consoleUrl(k));
        socket = s;
        s.binaryType = 'arraybuffer';
        setPhase({ state: 'connecting' });
        s.onopen = () => !gone && setPhase({ state: 'live' });
        s.onmessage = (e: MessageEvent<string | ArrayBuffer>) => t.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
        s.onclose = (e: CloseEvent) => !gone && setPhase({ state: 'closed', end: describeClose(e.code, e.reason) });
      },
      (e: unknown) => !gone && setPhase({ state: 'broken', error: e instanceof Error ? e.message : String(e) }),
    );
    return () => {
      gone = true;
      socket?.close();
      term?.dispose();
    };
  }, [k]);

  return (
    <div className="console" data-console-state={phase.state}>
      <p className="console-status small" role="status">
        {phase.state === 'loading' && 'Loading the terminal…'}
        {phase.state === 'connecting' && 'Connecting to the agent’s console…'}
        {phase.state === 'live' && (
          <>
            <span className="badge tone-green">live</span> read-only: what the agent’s terminal shows, as it happens
          </>
        )}
        {phase.state === 'closed' && <span className={TONE[phase.end.tone]}>{phase.end.text}</span>}
        {phase.state === 'broken' && <span className="tone-red">The terminal could not be loaded: {phase.error}</span>}
        {((phase.state === 'closed' && phase.end.retry) || phase.state === 'broken') && (
          <button type="button" className="secondary" onClick={onRetry}>
            Connect again
          </button>
        )}
      </p>
      <div ref={host} className="console-screen" role="region" aria-label={`Agent console of ${keyLabel(k)}`} />
    </div>
  );
}

/** The console of work item `k`; `Connect again` starts a fresh session (and terminal). */
export function AgentConsole({ k }: { k: string }) {
  const [attempt, setAttempt] = useState(0);
  return <Session key={attempt} k={k} onRetry={() => setAttempt((n) => n + 1)} />;
}
