// The cockpit's views, in navigation order.

export interface ViewRoute {
  path: string;
  label: string;
}

export const VIEWS: readonly ViewRoute[] = [
  { path: '/', label: 'Mission Control' },
  { path: '/needs-you', label: 'Needs you' },
  { path: '/pipeline', label: 'Pipeline' },
  { path: '/active', label: 'Active tasks' },
  { path: '/agents', label: 'Agents' },
  { path: '/tokens', label: 'Tokens & cost' },
  { path: '/services', label: 'Services' },
  { path: '/audit', label: 'Audit' },
];

/** Views shown only to callers with the admin scope, after the others. */
export const ADMIN_VIEWS: readonly ViewRoute[] = [{ path: '/people', label: 'People' }];

/** The views in the navigation of a caller who is (or is not) an admin. */
export function viewsFor(admin: boolean): readonly ViewRoute[] {
  return admin ? [...VIEWS, ...ADMIN_VIEWS] : VIEWS;
}
