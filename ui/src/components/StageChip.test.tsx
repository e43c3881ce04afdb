import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { stage, workItem, renderWith } from '../test-utils';
import { StageChip, stageLook } from './StageChip';
import { WorkItemCard } from './WorkItemCard';

describe('StageChip', () => {
  it('shows a done stage without its evidence as amber "unproven", never green', () => {
    render(<StageChip name="code" stage={stage({ status: 'done', status_class: 'done', proof: 'unproven' })} />);
    const chip = screen.getByTitle('Code: done · unproven');
    expect(chip.dataset.tone).toBe('amber');
    expect(chip.textContent).toContain('unproven');
    expect(chip.className).not.toContain('green');
  });

  it('is green only for a proven success', () => {
    expect(stageLook(stage({ status: 'done', status_class: 'done', proof: 'proven' })).tone).toBe('green');
    // A done status whose proof is not "proven" for any reason is not green either.
    expect(stageLook(stage({ status: 'done', status_class: 'done', proof: 'not_applicable' })).tone).toBe('amber');
  });

  it('reads a finished run with a failure outcome as failed', () => {
    const look = stageLook(stage({ status: 'triaged', status_class: 'done', proof: 'unproven', outcome: 'failure' }));
    expect(look).toEqual({ tone: 'red', text: 'triaged · failed' });
    // As TFactory's outcome now arrives, with its class.
    expect(stageLook(stage({ status: 'triaged', status_class: 'failed', outcome: 'failure' }))).toEqual({ tone: 'red', text: 'triaged · failed' });
    // A status that already says so is not repeated.
    expect(stageLook(stage({ status: 'failed', status_class: 'failed', outcome: 'failure' }))).toEqual({ tone: 'red', text: 'failed' });
  });

  it('reads a human_review outcome as review', () => {
    render(<StageChip name="test" stage={stage({ status: 'triaged', status_class: 'review', proof: 'unproven', outcome: 'human_review' })} />);
    const chip = screen.getByTitle('Test: triaged · human review');
    expect(chip.dataset.tone).toBe('violet');
    expect(chip.textContent).toContain('review');
    // An older server's class for the same event still reads review, never a green or amber success.
    expect(stageLook(stage({ status: 'triaged', status_class: 'done', proof: 'proven', outcome: 'human_review' }))).toEqual({ tone: 'violet', text: 'triaged · human review' });
    expect(stageLook(stage({ status: 'human_review', status_class: 'review' }))).toEqual({ tone: 'violet', text: 'human_review' });
    expect(stageLook(stage({ status: 'triaged', status_class: 'done', proof: 'proven', outcome: 'success' })).tone).toBe('green');
  });

  it('marks a stalled running stage and an absent one', () => {
    expect(stageLook(stage(), true)).toEqual({ tone: 'orange', text: 'in_progress · stalled' });
    expect(stageLook(null)).toEqual({ tone: 'grey', text: 'not started' });
  });

  it('puts the unproven chip on the board card', () => {
    const item = workItem('176', {
      plan: stage({ status: 'emitted', status_class: 'done', proof: 'proven' }),
      code: stage({ status: 'done', status_class: 'done', proof: 'unproven' }),
    });
    renderWith(<WorkItemCard item={item} />);
    expect(screen.getByTitle('Plan: emitted').dataset.tone).toBe('green');
    expect(screen.getByTitle('Code: done · unproven').dataset.tone).toBe('amber');
    expect(screen.getByTitle('Test: not started').dataset.tone).toBe('grey');
  });

  it('keeps a long status whole for hover and screen readers when the chip cuts it', () => {
    const item = workItem(
      '185',
      { plan: stage({ status: 'awaiting_approval', status_class: 'review', phase: 'planning' }), code: stage({ status: 'queued_for_worker_allocation', status_class: 'queued' }) },
      { liveness: { active_stage: 'plan', last_activity_age_seconds: 10, stalled: false } },
    );
    renderWith(<WorkItemCard item={item} />);
    const chip = screen.getByTitle('Plan: awaiting_approval');
    // What is drawn (and may be cut with an ellipsis) is hidden from screen readers...
    const shown = chip.querySelector('.chip-text') as HTMLElement;
    expect(shown.textContent).toBe('awaiting_approval');
    expect(shown.getAttribute('aria-hidden')).toBe('true');
    expect(chip.querySelector('.chip-stage')?.getAttribute('aria-hidden')).toBe('true');
    // ...which read the whole status, once.
    expect(chip.querySelector('.sr-only')?.textContent).toBe('Plan: awaiting_approval');
    const card = screen.getByRole('button', { name: /Plan: awaiting_approval/ });
    expect(card.textContent?.match(/awaiting_approval/g)).toHaveLength(2);
    expect(screen.getByTitle('Code: queued_for_worker_allocation').querySelector('.sr-only')?.textContent).toBe('Code: queued_for_worker_allocation');
    // The active stage's chip is the one that keeps its width.
    expect(chip.dataset.active).toBe('true');
    expect(screen.getByTitle('Code: queued_for_worker_allocation').dataset.active).toBeUndefined();
  });

  it('shows a repository-qualified key on the card as sent and opens it encoded', () => {
    renderWith(<WorkItemCard item={workItem('acme/shop#7150', { plan: stage() })} />);
    const card = screen.getByRole('button', { name: /acme\/shop#7150/ });
    expect(card.querySelector('.key')?.textContent).toBe('acme/shop#7150');
    card.click();
    expect(window.location.search).toBe('?task=acme%2Fshop%237150');
    expect(new URLSearchParams(window.location.search).get('task')).toBe('acme/shop#7150');
  });
});
