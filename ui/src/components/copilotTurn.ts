// A copilot answer while it streams: the events of one turn folded into what the panel
// shows. Each model call's text starts afresh (the answer is the last call's), tool calls
// show as running until they end, proposals appear as they are prepared, and `done`
// replaces it all with the finished turn.

import type { ChatAnswer, ChatEvent, PreparedAction, TraceStep } from '../api';

/** A tool call as the panel shows it while the turn runs. */
export interface ToolActivity {
  id: string;
  name: string;
  state: 'running' | 'ok' | 'failed';
  summary: string | null;
}

/** A copilot answer, streaming or finished. */
export interface AnswerState {
  /** The text so far: the current model call's, or the finished answer. */
  text: string;
  /** The model call the text belongs to. */
  step: number;
  tools: ToolActivity[];
  /** The finished turn's trace (empty until `done`). */
  trace: TraceStep[];
  proposals: PreparedAction[];
  status: 'streaming' | 'done' | 'stopped' | 'failed';
  /** What the turn cost at list price, once done (null: no known price). */
  costUsd: number | null;
}

export const EMPTY_ANSWER: AnswerState = {
  text: '',
  step: 0,
  tools: [],
  trace: [],
  proposals: [],
  status: 'streaming',
  costUsd: null,
};

/** `state` after `e`. */
export function applyChatEvent(state: AnswerState, e: ChatEvent): AnswerState {
  switch (e.event) {
    case 'text':
      return e.data.step === state.step
        ? { ...state, text: state.text + e.data.delta }
        : { ...state, step: e.data.step, text: e.data.delta };
    case 'tool_start':
      return { ...state, tools: [...state.tools, { id: e.data.id, name: e.data.name, state: 'running', summary: null }] };
    case 'tool_end': {
      const ended: ToolActivity = { id: e.data.id, name: e.data.name, state: e.data.ok ? 'ok' : 'failed', summary: e.data.summary };
      const known = state.tools.some((t) => t.id === e.data.id);
      return { ...state, tools: known ? state.tools.map((t) => (t.id === e.data.id ? ended : t)) : [...state.tools, ended] };
    }
    case 'proposal': {
      const action = e.data as unknown as PreparedAction;
      return state.proposals.some((p) => p.id === action.id) ? state : { ...state, proposals: [...state.proposals, action] };
    }
    case 'done':
      return finished(state, e.data.turn as unknown as ChatAnswer, e.data.cost_usd ?? null);
    case 'error':
      return { ...state, status: 'failed', tools: settle(state.tools) };
    default:
      return state;
  }
}

/** `state` as the finished turn `turn` has it. */
export function finished(state: AnswerState, turn: ChatAnswer, costUsd: number | null): AnswerState {
  return { ...state, text: turn.answer, trace: turn.trace ?? [], proposals: turn.proposals ?? [], status: 'done', costUsd };
}

/** `state` once the person stopped it: what arrived stays, running tools will not end. */
export function stopped(state: AnswerState): AnswerState {
  return state.status === 'streaming' ? { ...state, status: 'stopped', tools: settle(state.tools) } : state;
}

function settle(tools: ToolActivity[]): ToolActivity[] {
  return tools.map((t) => (t.state === 'running' ? { ...t, state: 'failed', summary: 'did not finish' } : t));
}
