// The copilot panel (header button, or Ctrl/⌘-J): ask about the pipeline in words. The
// answer streams in as the model writes it (server-sent events read from the fetch), with
// each tool call shown as it starts and finishes and each proposal as a card the moment
// it is prepared; Stop aborts the request, which stops the turn on the server. A finished
// answer comes with the trace of the tools it called (name, input, output, error, time).
// The conversation lives in this component only: closing the panel keeps it, reloading
// the page starts a new one. With no model provider configured the server answers 503 and
// the panel says how to configure one; proposals still work from the drawer.

import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { api, ApiError, type TraceStep } from '../api';
import { pretty } from '../format';
import { applyChatEvent, EMPTY_ANSWER, finished, stopped, type AnswerState, type ToolActivity } from './copilotTurn';
import { ProposalCard, reasonOf } from './ProposalCard';

/** Whether the key event is the copilot's shortcut (Ctrl-J or ⌘-J). */
export function isCopilotShortcut(e: { key: string; ctrlKey: boolean; metaKey: boolean; shiftKey?: boolean; altKey?: boolean }): boolean {
  return (e.ctrlKey || e.metaKey) && !e.shiftKey && !e.altKey && e.key.toLowerCase() === 'j';
}

type Turn =
  | { id: number; role: 'you'; text: string }
  | { id: number; role: 'copilot'; answer: AnswerState }
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

/** The tool calls of an answer still streaming (or stopped), each running, done or failed. */
function Activity({ tools }: { tools: ToolActivity[] }) {
  if (tools.length === 0) return null;
  return (
    <ul className="tool-activity" aria-label="Tool calls">
      {tools.map((t) => (
        <li key={t.id} data-tool={t.name} data-state={t.state}>
          <code className="tool-name">{t.name}</code>{' '}
          {t.state === 'running' ? (
            <span className="muted small">running…</span>
          ) : (
            <>
              <span className={`badge ${t.state === 'ok' ? 'tone-green' : 'tone-red'}`}>{t.state === 'ok' ? 'done' : 'failed'}</span>{' '}
              {t.summary && <span className="muted small">{t.summary}</span>}
            </>
          )}
        </li>
      ))}
    </ul>
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
  /** Aborts the turn in flight: the Stop button, or the panel going away. */
  const inFlight = useRef<AbortController | null>(null);

  useEffect(() => () => inFlight.current?.abort(), []);

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

  const add = (turn: NewTurn): number => {
    const id = nextId.current++;
    setTurns((t) => [...t, { ...turn, id } as Turn]);
    return id;
  };

  /** Changes the answer of turn `id`. */
  const update = (id: number, change: (a: AnswerState) => AnswerState) =>
    setTurns((all) => all.map((t) => (t.id === id && t.role === 'copilot' ? { ...t, answer: change(t.answer) } : t)));

  const send = async (e?: FormEvent) => {
    e?.preventDefault();
    const text = message.trim();
    if (!text || sending) return;
    add({ role: 'you', text });
    setMessage('');
    setSending(true);
    const controller = new AbortController();
    inFlight.current = controller;
    let answerId: number | null = null;
    try {
      const done = await api.chatStream(
        conversation ? { conversation_id: conversation, message: text } : { message: text },
        (event) => {
          if (event.event === 'start') {
            setConversation(event.data.conversation_id);
            setUnconfigured(null);
          }
          if (answerId === null) answerId = add({ role: 'copilot', answer: EMPTY_ANSWER });
          update(answerId, (a) => applyChatEvent(a, event));
        },
        controller.signal,
      );
      setConversation(done.turn.conversation_id);
      setUnconfigured(null);
      if (answerId === null) add({ role: 'copilot', answer: finished(EMPTY_ANSWER, done.turn, done.cost_usd) });
    } catch (err) {
      if (controller.signal.aborted) {
        if (answerId === null) answerId = add({ role: 'copilot', answer: EMPTY_ANSWER });
        update(answerId, stopped);
      } else if (err instanceof ApiError && err.status === 503 && answerId === null) setUnconfigured(err.message);
      else add({ role: 'error', text: reasonOf(err) });
    } finally {
      inFlight.current = null;
      setSending(false);
    }
  };

  // The Stop button goes away with the turn: focus returns to the message box.
  const stop = () => {
    inFlight.current?.abort();
    input.current?.focus();
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send();
    }
  };

  const restart = () => {
    inFlight.current?.abort();
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
      <div className="copilot-log" ref={log} role="log" aria-label="Conversation" aria-live="polite" aria-busy={sending}>
        {turns.length === 0 && !unconfigured && (
          <p className="muted">Ask about the pipeline: “where is #142 and why is it stuck?” The copilot reads CFactory's data and may prepare actions; nothing runs until you confirm it.</p>
        )}
        {turns.map((t) =>
          t.role === 'copilot' && t.answer.status === 'failed' && !t.answer.text && t.answer.tools.length === 0 ? null : t.role === 'you' ? (
            <div key={t.id} className="turn turn-you" data-role="you">
              <span className="turn-who">You</span>
              <p className="turn-text">{t.text}</p>
            </div>
          ) : t.role === 'error' ? (
            <div key={t.id} className="turn turn-error" data-role="error">
              <p className="note note-error">The copilot could not answer: {t.text}</p>
            </div>
          ) : (
            <div key={t.id} className="turn turn-copilot" data-role="copilot" data-status={t.answer.status}>
              <span className="turn-who">Copilot</span>
              {(t.answer.text || t.answer.status === 'done') && <p className="turn-text">{t.answer.text}</p>}
              {t.answer.status === 'done' ? <Trace trace={t.answer.trace} /> : <Activity tools={t.answer.tools} />}
              {t.answer.status === 'stopped' && <p className="muted small">Stopped: the rest of this answer was not written.</p>}
              {t.answer.proposals.map((a) => (
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
        {sending ? (
          <button type="button" className="secondary" onClick={stop}>
            Stop
          </button>
        ) : (
          <button type="submit" disabled={!message.trim()}>
            Send
          </button>
        )}
      </form>
    </aside>
  );
}
