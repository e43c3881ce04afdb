// What a panel shows while its data is missing: loading, failed, or simply empty. An
// endpoint that is down (or not deployed yet) degrades its panel, never the page.

import type { ReactNode } from 'react';
import { ApiError } from '../api';

export function ErrorNote({ what, error, onRetry }: { what: string; error: Error; onRetry?: () => void }) {
  const reason =
    error instanceof ApiError && error.status === 404
      ? 'this server does not offer it'
      : error instanceof ApiError
        ? error.message
        : 'the server could not be reached';
  return (
    <p className="note note-error" role="status">
      Could not load {what}: {reason}.
      {onRetry && (
        <button type="button" className="link" onClick={onRetry}>
          Try again
        </button>
      )}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** Renders `children(data)` once loaded, else the loading or error state. */
export function Panel<T>({ what, data, error, onRetry, children }: { what: string; data: T | null; error: Error | null; onRetry?: () => void; children: (data: T) => ReactNode }) {
  if (data !== null) return <>{children(data)}</>;
  if (error) return <ErrorNote what={what} error={error} onRetry={onRetry} />;
  return <Loading what={what} />;
}
