// A windowed list of fixed-height rows: only the rows in view (plus a few either side)
// are in the DOM, so a column of thousands of cards renders and scrolls like a short one.
// Arrow keys, Home and End move focus between rows, scrolling rows into being as needed.

import { useCallback, useEffect, useLayoutEffect, useRef, useState, type KeyboardEvent, type ReactNode } from 'react';

interface Props {
  count: number;
  rowHeight: number;
  renderRow: (index: number) => ReactNode;
  rowKey: (index: number) => string;
  label: string;
  /** Rows rendered beyond each edge of the view. */
  overscan?: number;
  /** Height assumed before the first measurement (and where layout is unavailable). */
  fallbackHeight?: number;
  className?: string;
}

/** The rows to render for a view of `height` pixels scrolled to `scrollTop`. */
export function visibleRange(scrollTop: number, height: number, rowHeight: number, count: number, overscan: number) {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + height) / rowHeight) + overscan);
  return { first, last };
}

export function VirtualList({ count, rowHeight, renderRow, rowKey, label, overscan = 4, fallbackHeight = 800, className }: Props) {
  const viewport = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(fallbackHeight);
  const focusAfterRender = useRef<number | null>(null);

  useLayoutEffect(() => {
    const el = viewport.current;
    if (!el) return;
    const measure = () => {
      if (el.clientHeight > 0) setHeight(el.clientHeight);
    };
    measure();
    if (typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const { first, last } = visibleRange(scrollTop, height, rowHeight, count, overscan);

  // Re-render only when the window of rows moves, not on every scrolled pixel.
  const onScroll = useCallback(() => {
    const el = viewport.current;
    if (!el) return;
    const top = el.scrollTop;
    setScrollTop((prev) => (Math.floor(prev / rowHeight) === Math.floor(top / rowHeight) ? prev : top));
  }, [rowHeight]);

  useEffect(() => {
    const index = focusAfterRender.current;
    if (index === null) return;
    const row = viewport.current?.querySelector<HTMLElement>(`[data-index="${index}"]`);
    if (!row) return;
    focusAfterRender.current = null;
    (row.querySelector<HTMLElement>('button, a, [tabindex]') ?? row).focus();
  });

  const focusRow = (index: number) => {
    const el = viewport.current;
    if (!el || count === 0) return;
    const target = Math.max(0, Math.min(count - 1, index));
    const top = target * rowHeight;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + rowHeight > el.scrollTop + el.clientHeight) el.scrollTop = top + rowHeight - el.clientHeight;
    focusAfterRender.current = target;
    setScrollTop(el.scrollTop);
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    const row = (e.target as HTMLElement).closest<HTMLElement>('[data-index]');
    if (!row) return;
    const index = Number(row.dataset.index);
    const page = Math.max(1, Math.floor(height / rowHeight));
    const moves: Record<string, number> = {
      ArrowDown: index + 1,
      ArrowUp: index - 1,
      PageDown: index + page,
      PageUp: index - page,
      Home: 0,
      End: count - 1,
    };
    const to = moves[e.key];
    if (to === undefined) return;
    e.preventDefault();
    focusRow(to);
  };

  const rows: ReactNode[] = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div
        key={rowKey(i)}
        role="listitem"
        aria-setsize={count}
        aria-posinset={i + 1}
        data-index={i}
        className="vrow"
        style={{ transform: `translateY(${i * rowHeight}px)`, height: rowHeight }}
      >
        {renderRow(i)}
      </div>,
    );
  }

  return (
    <div ref={viewport} className={`vlist ${className ?? ''}`} onScroll={onScroll} onKeyDown={onKeyDown}>
      <div role="list" aria-label={label} className="vlist-inner" style={{ height: count * rowHeight }}>
        {rows}
      </div>
    </div>
  );
}
