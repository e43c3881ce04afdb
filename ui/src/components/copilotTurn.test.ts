import { describe, expect, it } from 'vitest';
import type { ChatEvent } from '../api';
import { preparedAction } from '../test-utils';
import { applyChatEvent, EMPTY_ANSWER, stopped } from './copilotTurn';

const fold = (events: ChatEvent[]) => events.reduce(applyChatEvent, EMPTY_ANSWER);

describe('a streaming copilot answer', () => {
  it('keeps the current model call’s text, the tools as they run and the proposals', () => {
    const action = preparedAction({ id: 'act_1', kind: 'kick_handback', correlation_key: '301' });
    const state = fold([
      { event: 'start', data: { conversation_id: 'conv_1', model: 'anthropic:claude' } },
      { event: 'text', data: { step: 1, delta: 'Looking ' } },
      { event: 'text', data: { step: 1, delta: 'it up.' } },
      { event: 'tool_start', data: { id: 'tu_1', name: 'search' } },
      { event: 'tool_start', data: { id: 'tu_2', name: 'propose_kick_handback' } },
      { event: 'tool_end', data: { id: 'tu_1', name: 'search', ok: true, summary: 'answered 120 bytes in 2 ms' } },
      { event: 'proposal', data: action },
      { event: 'proposal', data: action },
    ] as ChatEvent[]);
    expect(state.text).toBe('Looking it up.');
    expect(state.tools.map((t) => [t.name, t.state])).toEqual([
      ['search', 'ok'],
      ['propose_kick_handback', 'running'],
    ]);
    expect(state.proposals.map((p) => p.id)).toEqual(['act_1']);
    expect(state.status).toBe('streaming');

    const next = applyChatEvent(state, { event: 'text', data: { step: 2, delta: 'Found it.' } } as ChatEvent);
    expect([next.step, next.text]).toEqual([2, 'Found it.']);

    const halted = stopped(next);
    expect(halted.status).toBe('stopped');
    expect(halted.text).toBe('Found it.');
    expect(halted.tools[1]).toMatchObject({ state: 'failed', summary: 'did not finish' });
  });

  it('ends with the finished turn, or fails', () => {
    const done = fold([
      { event: 'text', data: { step: 1, delta: 'draft' } },
      {
        event: 'done',
        data: {
          turn: { conversation_id: 'conv_1', answer: 'Final.', trace: [{ name: 'search', input: {}, output: {}, is_error: false, ms: 1 }], proposals: [], end: 'answered', steps: 1, usage: {} },
          cost_usd: 0.0012,
        },
      },
    ] as ChatEvent[]);
    expect([done.status, done.text, done.trace.length, done.costUsd]).toEqual(['done', 'Final.', 1, 0.0012]);
    expect(stopped(done)).toBe(done);

    const failed = fold([
      { event: 'tool_start', data: { id: 'tu_1', name: 'search' } },
      { event: 'error', data: { type: 'x', title: 'Bad gateway', status: 502, detail: 'the language model failed' } },
    ] as ChatEvent[]);
    expect(failed.status).toBe('failed');
    expect(failed.tools[0]?.state).toBe('failed');
  });
});
