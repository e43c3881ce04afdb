// Data read over HTTP and kept fresh by the live socket instead of a polling timer: the
// hook fetches on mount and again after WorkItem changes arrive, at most once per
// `minGapMs` (the server recomputes insights on every request, so bursts are coalesced).

import { useEffect, useRef, useState } from 'react';
import { useLive } from './live';

export interface Fetched<T> {
  data: T | null;
  error: Error | null;
  /** Fetches again now (after a change the user made). */
  reload: () => void;
}

/** Insights endpoints are recomputed per request; two seconds keeps the server relaxed. */
const REFETCH_GAP_MS = 2000;

/**
 * `load` is called with an abort signal; pass a stable function (or change `deps` to start
 * over). With `live` false, socket changes do not trigger refetches.
 */
export function useFetched<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: readonly unknown[],
  { live = true, minGapMs = REFETCH_GAP_MS } = {},
): Fetched<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [nonce, setNonce] = useState(0);
  const changes = useLive((s) => s.changes);
  const [trigger, setTrigger] = useState(0);
  const lastStart = useRef(0);
  // Changes before this mount are already in the first fetch.
  const seenChanges = useRef(changes);
  const loadRef = useRef(load);

  useEffect(() => {
    loadRef.current = load;
  });

  // A change from the socket: refetch now if the last fetch is old enough, else once the
  // gap has passed. Later changes inside the gap fold into that one refetch.
  useEffect(() => {
    if (!live || changes === seenChanges.current) return;
    seenChanges.current = changes;
    const wait = Math.max(0, lastStart.current + minGapMs - Date.now());
    const t = setTimeout(() => setTrigger((n) => n + 1), wait);
    return () => clearTimeout(t);
  }, [changes, live, minGapMs]);

  useEffect(() => {
    const ctl = new AbortController();
    lastStart.current = Date.now();
    loadRef
      .current(ctl.signal)
      .then((d) => {
        if (ctl.signal.aborted) return;
        setData(d);
        setError(null);
      })
      .catch((e: unknown) => {
        if (ctl.signal.aborted) return;
        setError(e instanceof Error ? e : new Error(String(e)));
      });
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [trigger, nonce, ...deps]);

  return { data, error, reload: () => setNonce((n) => n + 1) };
}
