import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { AgentConsole } from './AgentConsole';

// The terminal module is what loads xterm.js; here it records what it is given.
const terminals: { writes: (string | Uint8Array)[]; disposed: boolean }[] = [];
vi.mock('./terminal', () => ({
  openTerminal: () => {
    const t = { writes: [] as (string | Uint8Array)[], disposed: false };
    terminals.push(t);
    return { write: (d: string | Uint8Array) => t.writes.push(d), dispose: () => (t.disposed = true) };
  },
}));

/** A console socket the test drives. */
class ConsoleSocket {
  static all: ConsoleSocket[] = [];
  binaryType = 'blob';
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string | ArrayBuffer }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  sent: unknown[] = [];
  closed = false;
  constructor(readonly url: string) {
    ConsoleSocket.all.push(this);
  }
  send(data: unknown) {
    this.sent.push(data);
  }
  close() {
    this.closed = true;
  }
}

beforeEach(() => {
  ConsoleSocket.all = [];
  terminals.length = 0;
  vi.stubGlobal('WebSocket', ConsoleSocket);
});

const socket = () => ConsoleSocket.all[ConsoleSocket.all.length - 1] as ConsoleSocket;

describe('agent console', () => {
  it('streams the relay into the terminal, read-only, and says how it ended', async () => {
    const { unmount } = render(<AgentConsole k="acme/shop#601" />);
    await waitFor(() => expect(ConsoleSocket.all).toHaveLength(1));
    expect(socket().url).toBe(`ws://${window.location.host}/api/live-agents/acme%2Fshop%23601/ws`);
    expect(socket().binaryType).toBe('arraybuffer');
    expect(screen.getByRole('status').textContent).toMatch(/Connecting/);

    act(() => socket().onopen?.());
    expect(screen.getByRole('status').textContent).toMatch(/live/);
    const pane = new Uint8Array([0x1b, 0x5b, 0x33, 0x32, 0x6d, 0xff, 0x0d, 0x0a]);
    act(() => {
      socket().onmessage?.({ data: pane.buffer });
      socket().onmessage?.({ data: 'plain text\r\n' });
    });
    expect(terminals[0]?.writes).toEqual([pane, 'plain text\r\n']);
    expect(socket().sent).toEqual([]);
    expect(screen.getByRole('region', { name: 'Agent console of acme/shop#601' })).toBeTruthy();

    act(() => socket().onclose?.({ code: 4408, reason: 'too slow: the browser fell behind the console' }));
    expect(screen.getByRole('status').textContent).toMatch(/fell behind/);

    // Connecting again starts a fresh terminal and socket, and lets go of the old ones.
    fireEvent.click(screen.getByRole('button', { name: 'Connect again' }));
    await waitFor(() => expect(ConsoleSocket.all).toHaveLength(2));
    expect(terminals[0]?.disposed).toBe(true);
    expect(ConsoleSocket.all[0]?.closed).toBe(true);
    act(() => socket().onclose?.({ code: 4401, reason: 'the key or session no longer holds' }));
    expect(screen.getByRole('status').textContent).toMatch(/sign in again/);
    expect(screen.queryByRole('button', { name: 'Connect again' })).toBeNull();

    unmount();
    expect(terminals[1]?.disposed).toBe(true);
    expect(socket().closed).toBe(true);
  });

  it('shows why there is no console', async () => {
    render(<AgentConsole k="606" />);
    await waitFor(() => expect(ConsoleSocket.all).toHaveLength(1));
    act(() => socket().onclose?.({ code: 4404, reason: 'work item 606 has no running agent with a console' }));
    expect(screen.getByRole('status').textContent).toContain('No live console: work item 606 has no running agent with a console');
  });
});
