import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { json, mockFetch, preparedAction, renderWith } from '../test-utils';
import { CopilotPanel, isCopilotShortcut } from './CopilotPanel';

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
});
