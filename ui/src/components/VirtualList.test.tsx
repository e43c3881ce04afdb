import { act, fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { VirtualList, visibleRange } from './VirtualList';

const ROW = 100;

function List({ count }: { count: number }) {
  return (
    <VirtualList
      count={count}
      rowHeight={ROW}
      fallbackHeight={500}
      overscan={2}
      label="Numbers"
      rowKey={(i) => String(i)}
      renderRow={(i) => <button type="button">Row {i}</button>}
    />
  );
}

const rendered = () => screen.getAllByRole('listitem').map((r) => Number((r as HTMLElement).dataset.index));

describe('VirtualList', () => {
  it('computes the window of rows for a scroll position', () => {
    expect(visibleRange(0, 500, ROW, 2000, 2)).toEqual({ first: 0, last: 7 });
    expect(visibleRange(10_000, 500, ROW, 2000, 2)).toEqual({ first: 98, last: 107 });
    expect(visibleRange(199_600, 500, ROW, 2000, 2)).toEqual({ first: 1994, last: 2000 });
  });

  it('renders only a window of 2,000 rows, sized for all of them', () => {
    render(<List count={2000} />);
    const rows = screen.getAllByRole('listitem');
    expect(rows.length).toBeLessThanOrEqual(10);
    expect(rows[0]?.getAttribute('aria-setsize')).toBe('2000');
    expect((screen.getByRole('list', { name: 'Numbers' }) as HTMLElement).style.height).toBe(`${2000 * ROW}px`);
  });

  it('moves the window as the list scrolls', () => {
    const { container } = render(<List count={2000} />);
    const viewport = container.querySelector('.vlist') as HTMLElement;
    viewport.scrollTop = 150_000;
    fireEvent.scroll(viewport);
    const idx = rendered();
    expect(Math.min(...idx)).toBe(1498);
    expect(idx).toContain(1500);
    expect(idx.length).toBeLessThanOrEqual(10);
  });

  it('moves focus with the arrow keys and End, rendering the target row', () => {
    render(<List count={2000} />);
    const first = screen.getByRole('button', { name: 'Row 0' });
    act(() => first.focus());
    fireEvent.keyDown(first, { key: 'ArrowDown' });
    expect(document.activeElement?.textContent).toBe('Row 1');
    fireEvent.keyDown(document.activeElement as Element, { key: 'End' });
    expect(document.activeElement?.textContent).toBe('Row 1999');
    expect(rendered()).not.toContain(0);
  });
});
