// Live agent consoles: where a work item's console streams from, and what each way it
// can close means to the person watching. The server relays the agent's terminal
// read-only (docs/api.md, "Live agent consoles"); nothing typed here is ever sent.

/** The console WebSocket of work item `key`, on the page's own origin. */
export function consoleUrl(key: string, where: Pick<Location, 'protocol' | 'host'> = window.location): string {
  const scheme = where.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${where.host}/api/live-agents/${encodeURIComponent(key)}/ws`;
}

/** The close codes the console relay uses. */
export const CLOSE = {
  ended: 1000,
  failed: 1011,
  unauthorized: 4401,
  noConsole: 4404,
  tooSlow: 4408,
} as const;

export interface ConsoleEnd {
  /** What to tell the person. */
  text: string;
  /** How to show it. */
  tone: 'muted' | 'warn' | 'error';
  /** Whether connecting again may help. */
  retry: boolean;
}

/** What a close of the console socket means. `reason` is the server's own words. */
export function describeClose(code: number, reason: string): ConsoleEnd {
  const why = reason.trim();
  switch (code) {
    case CLOSE.ended:
      return { text: 'The console ended: the agent finished or stopped.', tone: 'muted', retry: true };
    case CLOSE.noConsole:
      return { text: `No live console${why ? `: ${why}` : '.'}`, tone: 'muted', retry: true };
    case CLOSE.tooSlow:
      return { text: 'This page fell behind the console and was disconnected.', tone: 'warn', retry: true };
    case CLOSE.unauthorized:
      return { text: 'Your key or session no longer holds: sign in again to watch.', tone: 'error', retry: false };
    case CLOSE.failed:
      return { text: `The console failed${why ? `: ${why}` : '.'}`, tone: 'error', retry: true };
    default:
      return { text: `The connection to the console was lost (code ${code}${why ? `: ${why}` : ''}).`, tone: 'warn', retry: true };
  }
}
