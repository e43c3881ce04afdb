import { act, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { ProgressFrame } from '../live';
import { renderWith, stage, workItem } from '../test-utils';
import { ActiveTasks } from './ActiveTasks';

const progress = (task_id: string, over: Partial<ProgressFrame> = {}): ProgressFrame => ({
  type: 'progress',
  correlation_key: null,
  service: 'aifactory',
  task_id,
  phase: 'coding',
  percent: 40,
  message: null,
  status: null,
  at: '2026-11-01T10:00:01Z',
  ...over,
});

describe('Active tasks', () => {
  it('shows running stages with live progress and phase, and drops finished tasks', () => {
    const { store } = renderWith(<ActiveTasks />);
    act(() => {
      store.push({
        type: 'snapshot',
        counts: { workitems: 2, stalled: 0 },
        items: [
          workItem('9', { code: stage({ task_id: 'p:9', phase: 'planning' }) }),
          workItem('10', { code: stage({ task_id: 'p:10', status: 'done', status_class: 'done', proof: 'proven' }) }, { links: { session_id: null, issue_number: 10, aifactory_task_ids: ['p:10'], branch: null, pr_number: null, tfactory_spec_ids: ['spec-10'], repo: null, emitted_issues: [] } }),
        ],
        next_cursor: null,
      });
      store.push(progress('p:9', { percent: 62.4, message: 'writing tests' }));
      // Progress of finished work, sent before its item knew the task: not active.
      store.push(progress('spec-10', { service: 'tfactory', phase: 'triaging', percent: 83 }));
      // Progress for a task no loaded item knows yet: shown until it finishes.
      store.push(progress('p:77', { phase: 'qa_review', percent: 10 }));
      store.push(progress('p:78', { phase: 'completed', percent: 100 }));
      store.flush();
    });

    const rows = within(screen.getByRole('list', { name: 'Running tasks' })).getAllByRole('listitem');
    expect(rows).toHaveLength(2);
    const nine = rows.find((r) => r.textContent?.includes('#9')) as HTMLElement;
    expect((within(nine).getByRole('progressbar', { name: 'AIFactory task p:9 progress' }) as HTMLProgressElement).value).toBeCloseTo(62.4);
    expect(nine.textContent).toContain('62%');
    expect(nine.textContent).toContain('coding');
    expect(nine.textContent).toContain('writing tests');
    expect(rows.some((r) => r.textContent?.includes('p:77') && r.textContent.includes('qa_review'))).toBe(true);
  });
});
