// Who is signed in, shared with every view so each can hide what the user may not do.

import { createContext, useContext } from 'react';
import type { Session } from './api';

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession needs a SessionContext provider');
  return session;
}
