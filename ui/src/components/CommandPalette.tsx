// The command palette (Ctrl-K or ⌘-K): type to search work items over /api/search (keys,
// aliases, titles, repos, branches, PRs, task and spec ids) or to jump to a view. Arrow
// keys pick, Enter opens, Escape closes.

import { useEffect, useId, useRef, useState, type KeyboardEvent } from 'react';
import { api, type SearchHit } from '../api';
import { keyLabel } from '../format';
import { VIEWS, type ViewRoute } from '../routes';
import { navigate, openTask } from '../router';

/** Typing pauses this long before a search goes out. */
const DEBOUNCE_MS = 120;

interface Choice {
  id: string;
  label: string;
  hint: string;
  run: () => void;
}

/** Whether the key event is the palette's shortcut. */
export function isPaletteShortcut(e: { key: string; ctrlKey: boolean; metaKey: boolean }): boolean {
  return (e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k';
}

function useSearch(q: string): { hits: SearchHit[]; error: boolean } {
  const [state, setState] = useState<{ q: string; hits: SearchHit[]; error: boolean }>({ q: '', hits: [], error: false });
  useEffect(() => {
    const text = q.trim();
    if (!text) return;
    const ctl = new AbortController();
    const t = setTimeout(() => {
      api.search(text, 8, ctl.signal).then(
        (r) => setState({ q: text, hits: r.results, error: false }),
        () => !ctl.signal.aborted && setState({ q: text, hits: [], error: true }),
      );
    }, DEBOUNCE_MS);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [q]);
  // Results of an older query are kept while the new one is on its way, but none for an empty box.
  return q.trim() ? state : { hits: [], error: false };
}

/** `views` are the ones the caller's navigation offers (People only for admins). */
export function CommandPalette({ onClose, views = VIEWS }: { onClose: () => void; views?: readonly ViewRoute[] }) {
  const [q, setQ] = useState('');
  const [active, setActive] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  const listId = useId();
  const { hits, error } = useSearch(q);

  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    input.current?.focus();
    return () => before?.focus?.();
  }, []);

  const lower = q.trim().toLowerCase();
  const choices: Choice[] = [
    ...hits.map((h) => ({
      id: `hit-${h.correlation_key}`,
      label: `${keyLabel(h.correlation_key)} ${h.title}`,
      hint: `${h.matched_on.replace(/_/g, ' ')}: ${h.matched_value}`,
      run: () => openTask(h.correlation_key),
    })),
    ...views.filter((v) => !lower || v.label.toLowerCase().includes(lower)).map((v) => ({
      id: `view-${v.path}`,
      label: `Go to ${v.label}`,
      hint: 'view',
      run: () => navigate(v.path),
    })),
  ];
  const current = Math.min(active, Math.max(0, choices.length - 1));

  const choose = (c: Choice | undefined) => {
    if (!c) return;
    onClose();
    c.run();
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      onClose();
    } else if (e.key === 'ArrowDown') {
      e.preventDefault();
      setActive((current + 1) % Math.max(1, choices.length));
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      setActive((current - 1 + choices.length) % Math.max(1, choices.length));
    } else if (e.key === 'Enter') {
      e.preventDefault();
      choose(choices[current]);
    } else if (e.key === 'Tab') {
      e.preventDefault(); // The input is the dialog's only stop; options are picked with arrows.
    }
  };

  return (
    <div className="scrim scrim-top" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="palette" role="dialog" aria-modal="true" aria-label="Command palette" onKeyDown={onKeyDown}>
        <input
          ref={input}
          role="combobox"
          aria-expanded={choices.length > 0}
          aria-controls={listId}
          aria-autocomplete="list"
          aria-activedescendant={choices[current] ? `${listId}-${current}` : undefined}
          aria-label="Search work items or jump to a view"
          placeholder="Search work items, keys, branches… or a view"
          value={q}
          onChange={(e) => {
            setQ(e.target.value);
            setActive(0);
          }}
        />
        <ul id={listId} role="listbox" aria-label="Results" className="palette-list">
          {choices.map((c, i) => (
            <li key={c.id} id={`${listId}-${i}`} role="option" aria-selected={i === current} className={i === current ? 'active' : ''} onMouseDown={(e) => e.preventDefault()} onClick={() => choose(c)}>
              <span>{c.label}</span>
              <span className="muted small">{c.hint}</span>
            </li>
          ))}
        </ul>
        {error && (
          <p className="note note-error small" role="status">
            Search is unavailable on this server.
          </p>
        )}
      </div>
    </div>
  );
}
