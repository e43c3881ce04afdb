import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { json, mockFetch, preparedAction, renderWith } from '../test-utils';
import { CopilotPanel, isCopilotShortcut } from './CopilotPanel';

/** A `text/event-stream` answer the test writes to piece by piece; it fails with an
 * AbortError when the request's signal aborts, as a real fetch's body does. */
function streamed(signal?: AbortSignal | null) {
  let writer!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      writer = c;
    },
  });
  signal?.addEventListener('abort', () => writer.error(new DOMException('The operation was aborted.', 'AbortError')));
  const bytes = new TextEncoder();
  return {
    response: new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
    write: (text: string) => writer.enqueue(bytes.encode(text)),
    end: () => writer.close(),
  };
}

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

const ask = (text: string) => {
  fireEvent.change(screen.getByLabelText('Message to the copilot'), { target: { value: text } });
  fireEvent.keyDown(screen.getByLabelText('Message to the copilot'), { key: 'Enter' });
};

describe('copilot panel', () => {
  it('shows how to configure a model when the server has none', async () => {
    mockFetch({
      'POST /api/copilot/chat': () =>
        json({ title: 'Service unavailable', status: 503, detail: 'No model provider is configured: set CFACTORY_COPILOT_PROVIDER=anthropic and ANTHROPIC_API_KEY.' }, 503),
    });
    renderWith(<CopilotPanel open onClose={() => {}} />);
    expect(document.activeElement).toBe(screen.getByLabelText('Message to the copilot'));
    ask('where is #142?');
    const hint = await screen.findByText(/set CFACTORY_COPILOT_PROVIDER=anthropic/);
    expect(hint.closest('[data-unconfigured]')?.textContent).toContain('The copilot cannot answer yet.');
    expect(hint.closest('[data-unconfigured]')?.textContent).toContain('open a work item');
    // The question stays in the conversation; no error turn is added for a missing model.
    expect(screen.getByRole('log').textContent).toContain('where is #142?');
    expect(screen.getByRole('log').querySelector('[data-role="error"]')).toBeNull();
  });

  it('shows the answer, the tool trace and the proposals, and keeps the conversation id', async () => {
    const bodies: unknown[] = [];
    mockFetch({
      'POST /api/copilot/chat': (_u: URL, init?: RequestInit) => {
        bodies.push(JSON.parse(String(init?.body)));
        return json({
          conversation_id: 'conv_1',
          answer: '#142 is stuck in code: no event for 2h.',
          trace: [
            { name: 'get_workitem', input: { correlation_key: '142' }, output: { title: 'Login' }, is_error: false, ms: 3 },
            { name: 'propose_recover', input: { correlation_key: '142' }, output: { error: 'not paused' }, is_error: true, ms: 1 },
          ],
          proposals: [preparedAction({ id: 'act_c', kind: 'recover', correlation_key: '142', target_service: 'aifactory', endpoint: '/api/tasks/x/resume' })],
        });
      },
    });
    renderWith(<CopilotPanel open onClose={() => {}} />);
    ask('where is #142?');
    expect(await screen.findByText('#142 is stuck in code: no event for 2h.')).toBeTruthy();

    const trace = screen.getByText(/Tool trace: 2 calls, 1 failed/).closest('details') as HTMLDetailsElement;
    expect(trace.open).toBe(false);
    const calls = within(trace).getAllByRole('listitem');
    expect(calls.map((c) => c.getAttribute('data-tool'))).toEqual(['get_workitem', 'propose_recover']);
    expect(calls[1]?.getAttribute('data-error')).toBe('true');
    expect(within(trace).getByRole('group', { name: 'Input of get_workitem' }).textContent).toBe(JSON.stringify({ correlation_key: '142' }, null, 2));
    expect(within(trace).getByRole('group', { name: 'Output of propose_recover' }).textContent).toContain('not paused');

    const card = screen.getByRole('article', { name: /Recover #142/ });
    expect(card.querySelector('.request')?.textContent).toBe('POST /api/tasks/x/resume');

    ask('and #143?');
    await waitFor(() => expect(screen.getAllByText('#142 is stuck in code: no event for 2h.')).toHaveLength(2));
    expect(within(screen.getByRole('log')).getByText('and #143?')).toBeTruthy();
    expect(bodies).toEqual([{ message: 'where is #142?' }, { conversation_id: 'conv_1', message: 'and #143?' }]);
  });

  it('closes on Escape and knows its shortcut', () => {
    let closed = 0;
    renderWith(<CopilotPanel open onClose={() => closed++} />);
    fireEvent.keyDown(screen.getByLabelText('Message to the copilot'), { key: 'Escape' });
    expect(closed).toBe(1);
    expect(isCopilotShortcut({ key: 'j', ctrlKey: true, metaKey: false })).toBe(true);
    expect(isCopilotShortcut({ key: 'J', ctrlKey: false, metaKey: true })).toBe(true);
    expect(isCopilotShortcut({ key: 'k', ctrlKey: true, metaKey: false })).toBe(false);
    expect(isCopilotShortcut({ key: 'j', ctrlKey: false, metaKey: false })).toBe(false);
  });

  it('streams the answer as it arrives, shows tools running and proposals, then the finished turn', async () => {
    let stream: ReturnType<typeof streamed> | null = null;
    const requests: RequestInit[] = [];
    mockFetch({
      'POST /api/copilot/chat': (_u: URL, init?: RequestInit) => {
        requests.push(init ?? {});
        stream = streamed(init?.signal);
        return stream.response;
      },
    });
    renderWith(<CopilotPanel open onClose={() => {}} />);
    ask('kick 301 back');
    await waitFor(() => expect(stream).not.toBeNull());
    const s = stream as unknown as ReturnType<typeof streamed>;
    expect(new Headers(requests[0]?.headers).get('accept')).toBe('text/event-stream');
    expect(screen.getByRole('button', { name: 'Stop' })).toBeTruthy();

    // An event cut in two, and text in pieces.
    const start = sse('start', { conversation_id: 'conv_9', model: 'anthropic:claude' });
    s.write(start.slice(0, 10));
    s.write(start.slice(10) + sse('text', { step: 1, delta: 'Preparing ' }));
    const answer = await screen.findByText('Preparing');
    s.write(sse('text', { step: 1, delta: 'a handback.' }).replace(/\n/g, '\r\n'));
    await waitFor(() => expect(answer.textContent).toBe('Preparing a handback.'));

    s.write(sse('tool_start', { id: 'tu_1', name: 'propose_kick_handback' }));
    const tool = await screen.findByText('running…');
    expect(tool.closest('li')?.getAttribute('data-tool')).toBe('propose_kick_handback');
    const action = preparedAction({ id: 'act_s', kind: 'kick_handback', correlation_key: '301', target_service: 'aifactory', endpoint: '/api/tasks/t301/apply-correction' });
    s.write(sse('proposal', action));
    expect(await screen.findByRole('article', { name: /#301/ })).toBeTruthy();
    s.write(sse('tool_end', { id: 'tu_1', name: 'propose_kick_handback', ok: true, summary: 'prepared action act_s' }));
    expect(await screen.findByText('prepared action act_s')).toBeTruthy();
    expect(screen.queryByText('running…')).toBeNull();

    s.write(sse('text', { step: 2, delta: 'Prepared; ' }) + sse('text', { step: 2, delta: 'confirm it.' }));
    await waitFor(() => expect(screen.getByRole('log').querySelector('[data-role="copilot"] .turn-text')?.textContent).toBe('Prepared; confirm it.'));
    s.write(
      sse('done', {
        turn: {
          conversation_id: 'conv_9',
          answer: 'Prepared; confirm it.',
          trace: [{ name: 'propose_kick_handback', input: { correlation_key: '301' }, output: { action_id: 'act_s' }, is_error: false, ms: 4 }],
          proposals: [action],
          end: 'answered',
          steps: 2,
          usage: { input_tokens: 130, output_tokens: 22 },
        },
        cost_usd: 0.0007,
      }),
    );
    s.end();
    expect(await screen.findByText(/Tool trace: 1 call/)).toBeTruthy();
    expect(screen.getAllByRole('article', { name: /#301/ })).toHaveLength(1);
    expect(screen.getByRole('log').querySelector('[data-role="copilot"]')?.getAttribute('data-status')).toBe('done');
    expect(screen.getByRole('button', { name: 'Send' })).toBeTruthy();
  });

  it('Stop aborts the turn, keeps what arrived, and the conversation goes on', async () => {
    const streams: ReturnType<typeof streamed>[] = [];
    const bodies: unknown[] = [];
    mockFetch({
      'POST /api/copilot/chat': (_u: URL, init?: RequestInit) => {
        bodies.push(JSON.parse(String(init?.body)));
        const s = streamed(init?.signal);
        streams.push(s);
        return s.response;
      },
    });
    renderWith(<CopilotPanel open onClose={() => {}} />);
    ask('take your time');
    await waitFor(() => expect(streams).toHaveLength(1));
    streams[0]?.write(sse('start', { conversation_id: 'conv_s', model: 'm' }) + sse('text', { step: 1, delta: 'Thinking' }) + sse('tool_start', { id: 'tu_1', name: 'search' }));
    expect(await screen.findByText('Thinking')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Stop' }));
    expect(await screen.findByText(/Stopped: the rest of this answer was not written/)).toBeTruthy();
    expect(screen.getByText('Thinking')).toBeTruthy();
    expect(screen.getByText('did not finish')).toBeTruthy();
    expect(screen.getByRole('log').querySelector('[data-role="error"]')).toBeNull();
    expect(screen.queryByRole('button', { name: 'Stop' })).toBeNull();
    expect(document.activeElement).toBe(screen.getByLabelText('Message to the copilot'));

    ask('go on');
    await waitFor(() => expect(streams).toHaveLength(2));
    expect(bodies[1]).toEqual({ conversation_id: 'conv_s', message: 'go on' });
    streams[1]?.write(sse('error', { type: 'https://cfactory.dev/problems/bad-gateway', title: 'Bad gateway', status: 502, detail: 'the language model failed: overloaded (HTTP 529)' }));
    streams[1]?.end();
    expect(await screen.findByText(/The copilot could not answer: the language model failed: overloaded \(HTTP 529\)/)).toBeTruthy();
  });
});
