import { act, renderHook } from '@testing-library/react';
import type { ReactNode } from 'react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LiveContext, LiveStore } from './live';
import { workItem } from './test-utils';
import { useFetched } from './useFetched';

describe('useFetched', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('refetches after live changes at most once per two seconds, and never on a timer alone', async () => {
    const store = new LiveStore(0);
    // A change from before the mount is in the first fetch already.
    store.push({ type: 'workitem', item: workItem('0'), merged_from: null });
    store.flush();
    const load = vi.fn(async () => 'data');
    const wrapper = ({ children }: { children: ReactNode }) => <LiveContext.Provider value={store}>{children}</LiveContext.Provider>;
    renderHook(() => useFetched(load, []), { wrapper });
    await act(async () => vi.advanceTimersByTime(0));
    expect(load).toHaveBeenCalledTimes(1);

    const change = (key: string) =>
      act(() => {
        store.push({ type: 'workitem', item: workItem(key), merged_from: null });
        store.flush();
      });

    change('1');
    await act(async () => vi.advanceTimersByTime(1999));
    expect(load).toHaveBeenCalledTimes(1);
    change('2');
    change('3');
    await act(async () => vi.advanceTimersByTime(1));
    expect(load).toHaveBeenCalledTimes(2);

    // A change long after the last fetch is picked up at once.
    await act(async () => vi.advanceTimersByTime(5000));
    change('4');
    await act(async () => vi.advanceTimersByTime(0));
    expect(load).toHaveBeenCalledTimes(3);

    // No polling: quiet minutes bring no requests.
    await act(async () => vi.advanceTimersByTime(10 * 60_000));
    expect(load).toHaveBeenCalledTimes(3);
  });
});
