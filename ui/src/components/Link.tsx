// An in-app link: a real <a href> (so it can be opened in a new tab or copied) whose
// plain left click navigates without reloading the page.

import type { MouseEvent, ReactNode } from 'react';
import { navigate } from '../router';

interface Props {
  to: string;
  children: ReactNode;
  className?: string;
  current?: boolean;
}

export function Link({ to, children, className, current }: Props) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return (
    <a href={to} className={className} onClick={onClick} aria-current={current ? 'page' : undefined}>
      {children}
    </a>
  );
}
