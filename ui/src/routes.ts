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
