// Sign-in for a server that has keys: the key is exchanged for an HttpOnly session cookie
// (POST /api/session) and then forgotten. It never goes into a URL or the page's storage.

import { useState, type FormEvent } from 'react';
import { api, ApiError, type Session } from '../api';

export function SignIn({ onSignedIn, expired = false }: { onSignedIn: (s: Session) => void; expired?: boolean }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api.signIn(key.trim());
      setKey('');
      onSignedIn(session);
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? 'That key was not accepted: it is unknown or has been revoked.'
          : err instanceof ApiError
            ? `Sign-in failed: ${err.message}`
            : 'The server could not be reached.',
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <form className="panel signin-form" onSubmit={submit} aria-labelledby="signin-title" method="post">
        <h1 id="signin-title">Sign in to CFactory</h1>
        <p className="muted">This server has API keys. Paste one made with <code>cfactory keys create</code>; it is exchanged for a session cookie and not kept by the page.</p>
        {expired && (
          <p className="note" role="status">
            Your session ended. Sign in again to continue.
          </p>
        )}
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          required
          value={key}
          onChange={(e) => setKey(e.target.value)}
          aria-invalid={error !== null}
          aria-describedby={error ? 'signin-error' : undefined}
        />
        {error && (
          <p id="signin-error" className="note note-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy || key.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
