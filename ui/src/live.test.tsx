import { act, renderHook } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LiveStore, backoffMs, useCockpitSocket } from './live';
import { FakeSocket, stage, workItem } from './test-utils';

describe('LiveStore', () => {
  it('applies a snapshot, then changes, and drops keys merged into another item', () => {
    const store = new LiveStore(0);
    store.push({ type: 'snapshot', counts: { workitems: 2, stalled: 0 }, items: [workItem('af-77'), workItem('9')], next_cursor: null });
    store.flush();
    expect([...store.getState().items.keys()]).toEqual(['af-77', '9']);
    expect(store.getState().changes).toBe(0);

    store.push({ type: 'workitem', item: workItem('142', {}, { aliases: ['af-77'] }), merged_from: 'af-77' });
    store.push({ type: 'workitem', item: workItem('9', {}, { event_count: 2 }), merged_from: null });
    store.flush();
    const s = store.getState();
    expect([...s.items.keys()].sort()).toEqual(['142', '9']);
    expect(s.items.get('9')?.event_count).toBe(2);
    // One batch of changes, one signal to refetch insights.
    expect(s.changes).toBe(1);
  });

  it('keeps a live copy newer than a page read over HTTP', () => {
    const store = new LiveStore(0);
    store.push({ type: 'workitem', item: workItem('9', {}, { event_count: 5 }), merged_from: null });
    store.flush();
    store.mergeItems([workItem('9', {}, { event_count: 3 }), workItem('10')]);
    expect(store.getState().items.get('9')?.event_count).toBe(5);
    expect(store.getState().items.has('10')).toBe(true);
  });

  it('keeps the last known percent and phase across status-only progress frames', () => {
    const store = new LiveStore(0);
    const base = { type: 'progress' as const, service: 'aifactory' as const, task_id: 'p:1', message: null, at: '2026-11-01T10:00:00Z' };
    store.push({ ...base, correlation_key: '9', phase: 'coding', percent: 40, status: null });
    store.push({ ...base, correlation_key: null, phase: null, percent: null, status: 'in_progress' });
    store.flush();
    expect(store.getState().progress.get('aifactory:p:1')).toMatchObject({ correlation_key: '9', phase: 'coding', percent: 40, status: 'in_progress' });
  });

  it('forgets that it held every item once the socket went offline', () => {
    const store = new LiveStore(0);
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ count: 1, items: [workItem('1', { code: stage() })], next_cursor: null, stalled_count: 0 })));
    return store.loadAll().then(() => {
      expect(store.getState().complete).toBe(true);
      store.setStatus('offline');
      expect(store.getState().complete).toBe(false);
    });
  });
});

describe('backoffMs', () => {
  it('doubles from half a second up to thirty, with jitter', () => {
    expect(backoffMs(0, () => 1)).toBe(500);
    expect(backoffMs(3, () => 1)).toBe(4000);
    expect(backoffMs(20, () => 1)).toBe(30_000);
    expect(backoffMs(20, () => 0)).toBe(15_000);
  });
});

describe('useCockpitSocket', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.install();
  });
  afterEach(() => vi.useRealTimers());

  it('is live after the snapshot, offline after a close, and reconnects by itself', () => {
    const store = new LiveStore(0);
    const url = () => 'ws://cockpit/api/ws';
    const { result, unmount } = renderHook(() => useCockpitSocket(store, url));
    expect(result.current).toBe('connecting');

    act(() => FakeSocket.last().send({ type: 'snapshot', counts: { workitems: 0, stalled: 0 }, items: [], next_cursor: null }));
    expect(result.current).toBe('live');

    act(() => FakeSocket.last().close());
    expect(result.current).toBe('offline');
    expect(store.getState().status).toBe('offline');
    expect(FakeSocket.sockets).toHaveLength(1);

    act(() => vi.advanceTimersByTime(500));
    expect(FakeSocket.sockets).toHaveLength(2);
    act(() => FakeSocket.last().send({ type: 'snapshot', counts: { workitems: 0, stalled: 0 }, items: [], next_cursor: null }));
    expect(result.current).toBe('live');

    unmount();
    expect(FakeSocket.last().closed).toBe(true);
    act(() => vi.advanceTimersByTime(60_000));
    expect(FakeSocket.sockets).toHaveLength(2);
  });

  it('backs off further after each failed attempt', () => {
    const store = new LiveStore(0);
    renderHook(() => useCockpitSocket(store, () => 'ws://x'));
    vi.spyOn(Math, 'random').mockReturnValue(1);
    act(() => FakeSocket.last().close()); // attempt 0: 500 ms
    act(() => vi.advanceTimersByTime(500));
    act(() => FakeSocket.last().close()); // attempt 1: 1 s
    act(() => vi.advanceTimersByTime(999));
    expect(FakeSocket.sockets).toHaveLength(2);
    act(() => vi.advanceTimersByTime(1));
    expect(FakeSocket.sockets).toHaveLength(3);
  });
});
