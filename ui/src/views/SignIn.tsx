// Sign-in for a server that has keys or single sign-on. With single sign-on configured
// (GET /api/auth/methods says so) the page offers it first: a plain link to the server's
// login route, which sends the browser to the identity provider and back with a session
// cookie. A key is exchanged for the same HttpOnly cookie (POST /api/session) and then
// forgotten; it never goes into a URL or the page's storage.

import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type Session } from '../api';

/** Where single sign-on starts, returning to the page the person is on. */
function ssoHref(loginUrl: string): string {
  const here = `${window.location.pathname}${window.location.search}`;
  return `${loginUrl}?return_to=${encodeURIComponent(here)}`;
}

export function SignIn({ onSignedIn, expired = false }: { onSignedIn: (s: Session) => void; expired?: boolean }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [ssoLogin, setSsoLogin] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    // Without an answer the page offers keys alone, as before single sign-on existed.
    api.authMethods().then(
      (methods) => {
        if (live) setSsoLogin(methods.sso?.login_url ?? null);
      },
      () => {},
    );
    return () => {
      live = false;
    };
  }, []);

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
        {expired && (
          <p className="note" role="status">
            Your session ended. Sign in again to continue.
          </p>
        )}
        {ssoLogin && (
          <>
            <a className="button-link" href={ssoHref(ssoLogin)}>
              Sign in with SSO
            </a>
            <p className="muted small signin-or">Or, for automation and administrators, with an API key:</p>
          </>
        )}
        <p className="muted">
          {ssoLogin ? 'Paste' : 'This server has API keys. Paste'} one made with <code>cfactory keys create</code>; it is exchanged for a session cookie and not kept by the page.
        </p>
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
