// The copilot panel (header button, or Ctrl/⌘-J): ask about the pipeline in words. Each
// answer comes with the trace of the tools it called (name, input, output, error, time)
// and any proposals it prepared, shown as cards that still wait for Confirm. The
// conversation lives in this component only: closing the panel keeps it, reloading the
// page starts a new one. With no model provider configured the server answers 503 and the
// panel says how to configure one; proposals still work from the drawer.

import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { api, ApiError, type PreparedAction, type TraceStep } from '../api';
import { pretty } from '../format';
import { ProposalCard, reasonOf } from './ProposalCard';

/** Whether the key event is the copilot's shortcut (Ctrl-J or ⌘-J). */
export function isCopilotShortcut(e: { key: string; ctrlKey: boolean; metaKey: boolean; shiftKey?: boolean; altKey?: boolean }): boolean {
  return (e.ctrlKey || e.metaKey) && !e.shiftKey && !e.altKey && e.key.toLowerCase() === 'j';
}

type Turn =
  | { id: number; role: 'you'; text: string }
  | { id: number; role: 'copilot'; text: string; trace: TraceStep[]; proposals: PreparedAction[] }
  | { id: number; role: 'error'; text: string };

/** A turn before it has an id (`Omit` over each member of the union). */
type NewTurn = Turn extends infer T ? (T extends Turn ? Omit<T, 'id'> : never) : never;

function Trace({ trace }: { trace: TraceStep[] }) {
  if (trace.length === 0) return <p className="muted small">No tools were called.</p>;
  const errors = trace.filter((t) => t.is_error).length;
  return (
    <details className="trace">
      <summary>
        Tool trace: {trace.length} call{trace.length > 1 ? 's' : ''}
        {errors > 0 && `, ${errors} failed`}
      </summary>
      <ol className="trace-list" aria-label="Tool calls, in order">
        {trace.map((t, i) => (
          <li key={i} data-tool={t.name} data-error={t.is_error}>
            <p className="step-line">
              <code className="tool-name">{t.name}</code>{' '}
              {t.is_error && <span className="badge tone-red">error</span>} <span className="muted small">{t.ms} ms</span>
            </p>
            <p className="muted small">Input</p>
            <pre className="payload" tabIndex={0} role="group" aria-label={`Input of ${t.name}`}>
              {pretty(t.input)}
            </pre>
            <p className="muted small">Output</p>
            <pre className="payload" tabIndex={0} role="group" aria-label={`Output of ${t.name}`}>
              {pretty(t.output)}
            </pre>
          </li>
        ))}
      </ol>
    </details>
  );
}

export function CopilotPanel({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [conversation, setConversation] = useState<string | null>(null);
  const [turns, setTurns] = useState<Turn[]>([]);
  const [message, setMessage] = useState('');
  const [sending, setSending] = useState(false);
  /** The server's word on how to configure a model, once it answered 503. */
  const [unconfigured, setUnconfigured] = useState<string | null>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const nextId = useRef(0);
  const log = useRef<HTMLDivElement>(null);

  // Opening moves focus to the message box; closing gives it back to where it was.
  useEffect(() => {
    if (!open) return;
    const before = document.activeElement as HTMLElement | null;
    input.current?.focus();
    return () => {
      if (before && document.contains(before)) before.focus();
    };
  }, [open]);

  useEffect(() => {
    const el = log.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [turns]);

  const add = (turn: NewTurn) => {
    const id = nextId.current++;
    setTurns((t) => [...t, { ...turn, id } as Turn]);
  };

  const send = async (e?: FormEvent) => {
    e?.preventDefault();
    const text = message.trim();
    if (!text || sending) return;
    add({ role: 'you', text });
    setMessage('');
    setSending(true);
    try {
      const r = await api.chat(conversation ? { conversation_id: conversation, message: text } : { message: text });
      setConversation(r.conversation_id);
      setUnconfigured(null);
      add({ role: 'copilot', text: r.answer, trace: r.trace ?? [], proposals: r.proposals ?? [] });
    } catch (err) {
      if (err instanceof ApiError && err.status === 503) setUnconfigured(err.message);
      else add({ role: 'error', text: reasonOf(err) });
    } finally {
      setSending(false);
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send();
    }
  };

  const restart = () => {
    setConversation(null);
    setTurns([]);
    input.current?.focus();
  };

  return (
    <aside
      id="copilot"
      className="copilot"
      aria-labelledby="copilot-title"
      hidden={!open}
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.stopPropagation();
          onClose();
        }
      }}
    >
      <header className="copilot-head">
        <h2 id="copilot-title">Copilot</h2>
        <span className="spacer" />
        {turns.length > 0 && (
          <button type="button" className="secondary" onClick={restart}>
            New conversation
          </button>
        )}
        <button type="button" className="secondary" onClick={onClose} aria-label="Close the copilot" aria-keyshortcuts="Escape">
          Close
        </button>
      </header>
      <div className="copilot-log" ref={log} role="log" aria-label="Conversation" aria-live="polite">
        {turns.length === 0 && !unconfigured && (
          <p className="muted">Ask about the pipeline: “where is #142 and why is it stuck?” The copilot reads CFactory's data and may prepare actions; nothing runs until you confirm it.</p>
        )}
        {turns.map((t) =>
          t.role === 'you' ? (
            <div key={t.id} className="turn turn-you" data-role="you">
              <span className="turn-who">You</span>
              <p className="turn-text">{t.text}</p>
            </div>
          ) : t.role === 'error' ? (
            <div key={t.id} className="turn turn-error" data-role="error">
              <p className="note note-error">The copilot could not answer: {t.text}</p>
            </div>
          ) : (
            <div key={t.id} className="turn turn-copilot" data-role="copilot">
              <span className="turn-who">Copilot</span>
              <p className="turn-text">{t.text}</p>
              <Trace trace={t.trace} />
              {t.proposals.map((a) => (
                <ProposalCard key={a.id} action={a} headingLevel={3} />
              ))}
            </div>
          ),
        )}
        {sending && (
          <p className="muted small" role="status">
            The copilot is working…
          </p>
        )}
      </div>
      {unconfigured && (
        <div className="note copilot-unconfigured" role="status" data-unconfigured>
          <p>
            <strong>The copilot cannot answer yet.</strong> {unconfigured}
          </p>
          <p className="small">Proposals still work without one: open a work item and use the buttons under Actions.</p>
        </div>
      )}
      <form className="copilot-form" onSubmit={send}>
        <label htmlFor="copilot-message" className="sr-only">
          Message to the copilot
        </label>
        <textarea
          id="copilot-message"
          ref={input}
          rows={3}
          value={message}
          onChange={(e) => setMessage(e.target.value)}
          onKeyDown={onKeyDown}
          placeholder="Ask the copilot… (Enter sends, Shift-Enter adds a line)"
          maxLength={8000}
        />
        <button type="submit" disabled={sending || !message.trim()}>
          {sending ? 'Sending…' : 'Send'}
        </button>
      </form>
    </aside>
  );
}
