// The terminal an agent console is drawn in: xterm.js, read-only. This module is only
// ever loaded with `import()` when a console opens, so the cockpit's first load does not
// carry xterm.js or its stylesheet.

import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';

export interface TerminalHandle {
  /** Writes terminal output (ANSI included) as the agent produced it. */
  write(data: string | Uint8Array): void;
  dispose(): void;
}

/** Roughly how wide one cell of the 12 px monospace font is. */
const CELL_PX = 7.3;

/** Opens a read-only terminal in `host`, as many columns wide as fit. */
export function openTerminal(host: HTMLElement): TerminalHandle {
  const cols = Math.max(40, Math.min(200, Math.floor((host.clientWidth - 16) / CELL_PX) || 100));
  const term = new Terminal({
    cols,
    rows: 22,
    disableStdin: true,
    convertEol: true,
    cursorBlink: false,
    cursorStyle: 'underline',
    scrollback: 5000,
    fontSize: 12,
    fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
    // Coloured agent output stays readable on the dark background; xterm.js draws dim
    // text at half opacity, which this foreground keeps above 4.5:1 too.
    minimumContrastRatio: 4.5,
    theme: { background: '#0d1117', foreground: '#f0f6fc' },
  });
  term.open(host);
  return {
    write: (data) => term.write(data),
    dispose: () => term.dispose(),
  };
}
