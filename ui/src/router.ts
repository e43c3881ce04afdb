// Client-side routing over the History API: the location is an external store that
// components read with `useLocation`, and `navigate` pushes a new entry. The server
// answers every unknown non-/api path with index.html, so deep links load the app.

import { useSyncExternalStore } from 'react';

type Listener = () => void;
const listeners = new Set<Listener>();

function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  window.addEventListener('popstate', listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener('popstate', listener);
  };
}

// The snapshot must be a stable value between changes, so it is the href string and the
// parsing happens in the hook.
const snapshot = () => window.location.pathname + window.location.search;

/** Goes to `to` (a path with an optional query) without reloading the page. */
export function navigate(to: string, { replace = false } = {}): void {
  if (to === snapshot()) return;
  if (replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  listeners.forEach((l) => l());
}

/** The current path and query, re-rendering the caller when either changes. */
export function useLocation(): { path: string; params: URLSearchParams } {
  const href = useSyncExternalStore(subscribe, snapshot);
  const url = new URL(href, 'http://cockpit.invalid');
  return { path: url.pathname, params: url.searchParams };
}

/** The current location with some query parameters set (or removed when null/empty). */
export function withParams(changes: Record<string, string | null>, path = window.location.pathname): string {
  const params = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === '') params.delete(k);
    else params.set(k, v);
  }
  const q = params.toString();
  return q ? `${path}?${q}` : path;
}

/** Opens the work-item drawer for `key` on the current view (`?task=KEY`). */
export function openTask(key: string): void {
  navigate(withParams({ task: key }));
}
