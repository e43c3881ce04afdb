// The cockpit shell: finds out who is signed in (or shows sign-in), opens the one live
// socket, and lays out navigation, the current view, the drawer and the palette.

import { useCallback, useEffect, useState, type ComponentType } from 'react';
import { api, ApiError, canAdminister, onUnauthorized, type Session } from './api';
import { CommandPalette, isPaletteShortcut } from './components/CommandPalette';
import { CopilotPanel, isCopilotShortcut } from './components/CopilotPanel';
import { Drawer } from './components/Drawer';
import { Link } from './components/Link';
import { LiveContext, LiveStore, useCockpitSocket, type SocketStatus } from './live';
import { useLocation } from './router';
import { viewsFor } from './routes';
import { SessionContext } from './session';
import { useFetched } from './useFetched';
import { ActiveTasks } from './views/ActiveTasks';
import { Agents } from './views/Agents';
import { Audit } from './views/Audit';
import { MissionControl } from './views/MissionControl';
import { NeedsYou } from './views/NeedsYou';
import { People } from './views/People';
import { Pipeline } from './views/Pipeline';
import { Services } from './views/Services';
import { SignIn } from './views/SignIn';
import { TokensView } from './views/Tokens';

const PAGES: Record<string, ComponentType> = {
  '/': MissionControl,
  '/needs-you': NeedsYou,
  '/pipeline': Pipeline,
  '/active': ActiveTasks,
  '/agents': Agents,
  '/tokens': TokensView,
  '/services': Services,
  '/audit': Audit,
  '/people': People,
};

function LivePill({ status }: { status: SocketStatus }) {
  const text = status === 'live' ? 'live' : status === 'offline' ? 'offline' : 'connecting';
  return (
    <span className={`pill pill-${status}`} role="status" aria-label={`Live updates: ${text}`} data-status={status}>
      <span className="dot" aria-hidden="true" />
      {text}
    </span>
  );
}

function NeedsYouCount() {
  const n = useFetched((signal) => api.needsYouCount(signal), []);
  if (!n.data?.count) return null;
  return (
    <span className="nav-count">
      {n.data.count}
      <span className="sr-only"> waiting</span>
    </span>
  );
}

function NotFound() {
  return (
    <section className="view">
      <h1>Not found</h1>
      <p>
        There is no view here. <Link to="/">Go to Mission Control</Link>.
      </p>
    </section>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const [store] = useState(() => new LiveStore());
  const status = useCockpitSocket(store);
  const { path, params } = useLocation();
  const [palette, setPalette] = useState(false);
  // The copilot mounts on first use and then stays, hidden when closed, so its
  // conversation survives closing the panel.
  const [copilot, setCopilot] = useState<'never' | 'open' | 'closed'>('never');
  const task = params.get('task');
  const toggleCopilot = useCallback(() => setCopilot((c) => (c === 'open' ? 'closed' : 'open')), []);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (isPaletteShortcut(e)) {
        e.preventDefault();
        setPalette((open) => !open);
      } else if (isCopilotShortcut(e)) {
        e.preventDefault();
        toggleCopilot();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [toggleCopilot]);

  const views = viewsFor(canAdminister(session));
  const view = views.find((v) => v.path === path);
  const Page = PAGES[path] ?? NotFound;
  useEffect(() => {
    document.title = view ? `${view.label} · CFactory` : 'CFactory';
  }, [view]);

  return (
    <SessionContext.Provider value={session}>
      <LiveContext.Provider value={store}>
        <a className="skip" href="#main">
          Skip to content
        </a>
        <header className="topbar">
          <span className="brand">CFactory</span>
          <LivePill status={status} />
          <button type="button" className="palette-open" onClick={() => setPalette(true)} aria-keyshortcuts="Control+K Meta+K">
            Search <kbd>Ctrl K</kbd>
          </button>
          <button
            type="button"
            className={`palette-open copilot-toggle${copilot === 'open' ? ' active' : ''}`}
            onClick={toggleCopilot}
            aria-expanded={copilot === 'open'}
            aria-controls={copilot === 'never' ? undefined : 'copilot'}
            aria-keyshortcuts="Control+J Meta+J"
          >
            Copilot <kbd>Ctrl J</kbd>
          </button>
          <span className="spacer" />
          {session.user && (
            <span className="small" title={session.user.groups.length ? `groups: ${session.user.groups.join(', ')}` : undefined}>
              {session.user.name}
            </span>
          )}
          <span className="muted small">tenant {session.tenant}</span>
          {!session.open_mode && (
            <button type="button" className="secondary" onClick={onSignOut}>
              Sign out
            </button>
          )}
        </header>
        <div className={`layout${copilot === 'open' ? ' with-copilot' : ''}`}>
          <nav className="sidenav" aria-label="Views">
            <ul>
              {views.map((v) => (
                <li key={v.path}>
                  <Link to={v.path} current={v.path === path}>
                    {v.label}
                    {v.path === '/needs-you' && <NeedsYouCount />}
                  </Link>
                </li>
              ))}
            </ul>
          </nav>
          <main id="main" tabIndex={-1}>
            <Page />
          </main>
        </div>
        {copilot !== 'never' && <CopilotPanel open={copilot === 'open'} onClose={() => setCopilot('closed')} />}
        {task && <Drawer key={task} taskKey={task} />}
        {palette && <CommandPalette views={views} onClose={() => setPalette(false)} />}
      </LiveContext.Provider>
    </SessionContext.Provider>
  );
}

type Auth = { state: 'checking' } | { state: 'in'; session: Session } | { state: 'out'; expired: boolean } | { state: 'down'; error: string };

export function App() {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });

  const check = useCallback(() => {
    api.session().then(
      (session) => setAuth({ state: 'in', session }),
      (e: unknown) =>
        setAuth(e instanceof ApiError && e.status === 401 ? { state: 'out', expired: false } : { state: 'down', error: e instanceof Error ? e.message : String(e) }),
    );
  }, []);

  useEffect(check, [check]);
  useEffect(() => onUnauthorized(() => setAuth({ state: 'out', expired: true })), []);

  const signOut = () => {
    // Whatever the server answers, this page forgets the session.
    const done = () => setAuth({ state: 'out', expired: false });
    api.signOut().then(done, done);
  };

  switch (auth.state) {
    case 'checking':
      return (
        <main id="main" className="signin">
          <p className="muted" role="status">
            Connecting to CFactory…
          </p>
        </main>
      );
    case 'down':
      return (
        <main id="main" className="signin">
          <div className="panel">
            <h1>CFactory is not answering</h1>
            <p className="note note-error" role="alert">
              {auth.error}
            </p>
            <button type="button" onClick={check}>
              Try again
            </button>
          </div>
        </main>
      );
    case 'out':
      return <SignIn expired={auth.expired} onSignedIn={(session) => setAuth({ state: 'in', session })} />;
    case 'in':
      return <Shell session={auth.session} onSignOut={signOut} />;
  }
}
