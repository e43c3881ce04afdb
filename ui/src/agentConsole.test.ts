import { describe, expect, it } from 'vitest';
import { CLOSE, consoleUrl, describeClose } from './agentConsole';

describe('agent console wiring', () => {
  it('opens the relay on the page’s own origin, with the key encoded', () => {
    expect(consoleUrl('601', { protocol: 'http:', host: '127.0.0.1:3110' })).toBe('ws://127.0.0.1:3110/api/live-agents/601/ws');
    expect(consoleUrl('acme/shop#7150', { protocol: 'https:', host: 'cockpit.example.com' })).toBe('wss://cockpit.example.com/api/live-agents/acme%2Fshop%237150/ws');
  });

  it('says what each close means and whether connecting again can help', () => {
    expect(describeClose(CLOSE.ended, 'console ended')).toEqual({ text: 'The console ended: the agent finished or stopped.', tone: 'muted', retry: true });
    expect(describeClose(CLOSE.noConsole, 'work item 601 has no running agent with a console')).toMatchObject({
      text: 'No live console: work item 601 has no running agent with a console',
      retry: true,
    });
    expect(describeClose(CLOSE.tooSlow, 'too slow').text).toMatch(/fell behind/);
    expect(describeClose(CLOSE.unauthorized, '')).toMatchObject({ tone: 'error', retry: false });
    expect(describeClose(CLOSE.failed, 'console failed: pane died')).toMatchObject({ text: 'The console failed: console failed: pane died', tone: 'error' });
    expect(describeClose(1006, '').text).toBe('The connection to the console was lost (code 1006).');
  });
});
