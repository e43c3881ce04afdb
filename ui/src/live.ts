// The cockpit's live state: every WorkItem the page knows, the latest progress of each
// running task, and the socket's status. One WebSocket (`useCockpitSocket`) feeds it;
// views read it through `useLive`. Frames are applied in batches so a burst of changes
// costs one re-render, not one per frame.

import { createContext, useContext, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { api, type ServiceName, type WorkItem } from './api';

export type SocketStatus = 'connecting' | 'live' | 'offline';

export interface ProgressFrame {
  type: 'progress';
  correlation_key: string | null;
  service: ServiceName;
  task_id: string;
  phase: string | null;
  percent: number | null;
  message: string | null;
  status: string | null;
  at: string;
}

export type Frame =
  | { type: 'snapshot'; counts: { workitems: number; stalled: number }; items: WorkItem[]; next_cursor: string | null }
  | { type: 'workitem'; item: WorkItem; merged_from: string | null }
  | ProgressFrame;

export interface LiveState {
  status: SocketStatus;
  /** Items by canonical key. */
  items: ReadonlyMap<string, WorkItem>;
  /** Latest progress per `service:task_id`. */
  progress: ReadonlyMap<string, ProgressFrame>;
  /** Totals from the latest snapshot. */
  counts: { workitems: number; stalled: number } | null;
  /** Bumped once per batch of WorkItem changes: the signal to refetch insights. */
  changes: number;
  /** Whether `items` holds every item (the board paged them all in), not just recent ones. */
  complete: boolean;
}

/** Most progress entries kept; the oldest go first. */
const MAX_PROGRESS = 300;
/** The board pages items in this many at a time (the API's maximum). */
const PAGE = 500;
/** Upper bound on items paged in, so a huge tenant cannot exhaust the tab. */
const MAX_ITEMS = 20_000;

/** Whether `next` is at least as new as `prev` (a page can be older than a live frame). */
function newer(next: WorkItem, prev: WorkItem | undefined): boolean {
  if (!prev) return true;
  if (next.event_count !== prev.event_count) return next.event_count > prev.event_count;
  return next.updated_at >= prev.updated_at;
}

/** The external store behind `useLive`. */
export class LiveStore {
  private state: LiveState = {
    status: 'connecting',
    items: new Map(),
    progress: new Map(),
    counts: null,
    changes: 0,
    complete: false,
  };
  private readonly listeners = new Set<() => void>();
  private pending: Frame[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private loading: Promise<void> | null = null;

  /** `flushDelayMs`: how long frames may wait to be applied together. */
  constructor(private readonly flushDelayMs = 30) {}

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getState = (): LiveState => this.state;

  private set(next: Partial<LiveState>): void {
    this.state = { ...this.state, ...next };
    this.listeners.forEach((l) => l());
  }

  setStatus(status: SocketStatus): void {
    if (status === this.state.status) return;
    // Changes may have been missed while offline: the full list must be paged in again.
    const complete = status === 'offline' ? false : this.state.complete;
    this.set({ status, complete });
  }

  /** Queues a frame; it is applied with the others that arrive within the flush delay. */
  push(frame: Frame): void {
    this.pending.push(frame);
    this.timer ??= setTimeout(() => this.flush(), this.flushDelayMs);
  }

  /** Applies every queued frame now. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const frames = this.pending;
    this.pending = [];
    if (frames.length === 0) return;

    let items: Map<string, WorkItem> | null = null;
    let progress: Map<string, ProgressFrame> | null = null;
    let counts = this.state.counts;
    let changed = false;
    for (const frame of frames) {
      if (frame.type === 'snapshot') {
        items ??= new Map(this.state.items);
        for (const item of frame.items) items.set(item.correlation_key, item);
        counts = frame.counts;
      } else if (frame.type === 'workitem') {
        items ??= new Map(this.state.items);
        if (frame.merged_from) items.delete(frame.merged_from);
        for (const alias of frame.item.aliases) items.delete(alias);
        items.set(frame.item.correlation_key, frame.item);
        changed = true;
      } else {
        progress ??= new Map(this.state.progress);
        const id = `${frame.service}:${frame.task_id}`;
        const prev = progress.get(id);
        progress.delete(id);
        // Status-only frames carry no percent or phase; keep what the last one said.
        progress.set(id, {
          ...frame,
          correlation_key: frame.correlation_key ?? prev?.correlation_key ?? null,
          phase: frame.phase ?? prev?.phase ?? null,
          percent: frame.percent ?? prev?.percent ?? null,
          message: frame.message ?? prev?.message ?? null,
        });
        while (progress.size > MAX_PROGRESS) progress.delete(progress.keys().next().value as string);
      }
    }
    this.set({
      items: items ?? this.state.items,
      progress: progress ?? this.state.progress,
      counts,
      changes: changed ? this.state.changes + 1 : this.state.changes,
    });
  }

  /** Adds items read over HTTP, keeping any newer copy a live frame already brought. */
  mergeItems(page: WorkItem[]): void {
    const items = new Map(this.state.items);
    for (const item of page) {
      if (newer(item, items.get(item.correlation_key))) items.set(item.correlation_key, item);
    }
    this.set({ items });
  }

  /** Pages every item in (once; concurrent callers share the load). */
  loadAll(): Promise<void> {
    this.loading ??= (async () => {
      try {
        let cursor: string | null = null;
        let loaded = 0;
        do {
          const page = await api.workItems({ limit: PAGE, cursor });
          this.mergeItems(page.items);
          loaded += page.items.length;
          cursor = page.next_cursor ?? null;
        } while (cursor && loaded < MAX_ITEMS);
        this.set({ complete: true });
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }
}

export const LiveContext = createContext<LiveStore | null>(null);

/** The live store this page shares. */
export function useLiveStore(): LiveStore {
  const store = useContext(LiveContext);
  if (!store) throw new Error('useLiveStore needs a LiveContext provider');
  return store;
}

/** A slice of the live state; `select` must return a value that is stable between changes. */
export function useLive<T>(select: (s: LiveState) => T): T {
  const store = useLiveStore();
  return useSyncExternalStore(store.subscribe, () => select(store.getState()));
}

/** Reconnect delay after `attempt` failures: doubling from 0.5 s to 30 s, with jitter. */
export function backoffMs(attempt: number, random = Math.random): number {
  const base = Math.min(30_000, 500 * 2 ** attempt);
  return Math.round(base * (0.5 + random() / 2));
}

function socketUrl(): string {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${window.location.host}/api/ws`;
}

/**
 * The cockpit's one WebSocket: feeds `store`, reconnects with backoff after any close and
 * at once when the browser comes back online, and returns whether it is live.
 */
export function useCockpitSocket(store: LiveStore, url: () => string = socketUrl): SocketStatus {
  const [status, setStatus] = useState<SocketStatus>('connecting');
  // Read at each (re)connect, so a caller's inline function does not restart the socket.
  const urlRef = useRef(url);
  useEffect(() => {
    urlRef.current = url;
  });

  useEffect(() => {
    let socket: WebSocket | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let attempt = 0;
    let stopped = false;

    const report = (s: SocketStatus) => {
      setStatus(s);
      store.setStatus(s);
    };

    const connect = () => {
      retry = null;
      const ws = new WebSocket(urlRef.current());
      socket = ws;
      ws.onmessage = (msg) => {
        let frame: Frame;
        try {
          frame = JSON.parse(String(msg.data)) as Frame;
        } catch {
          return; // A frame we cannot read is skipped, not fatal.
        }
        if (frame.type === 'snapshot') {
          attempt = 0;
          report('live');
        }
        store.push(frame);
      };
      ws.onclose = () => {
        if (socket !== ws || stopped) return;
        socket = null;
        report('offline');
        retry = setTimeout(connect, backoffMs(attempt++));
      };
    };

    const reconnectNow = () => {
      if (socket || stopped) return;
      if (retry) clearTimeout(retry);
      connect();
    };

    connect();
    window.addEventListener('online', reconnectNow);
    return () => {
      stopped = true;
      window.removeEventListener('online', reconnectNow);
      if (retry) clearTimeout(retry);
      socket?.close();
    };
  }, [store]);

  return status;
}
