// The people of the tenant as an admin manages them: the users who signed in by single
// sign-on or were provisioned over SCIM, their groups, and the roles table that maps
// groups to scopes. The shapes are the admin API's (`/api/users`, `/api/groups`,
// `/api/roles`), generated from the server's /openapi.json into src/openapi/; the calls
// are `api`'s.

import { api } from './api';
import type * as Wire from './openapi/schema.gen';

/** One person of the tenant (`GET /api/users`); `source` is `sso` or `scim`. */
export type Person = Wire.UserView;
export type PersonList = Wire.UserList;
/** One provisioned group of the tenant (`GET /api/groups`), with its members and scopes. */
export type Group = Wire.GroupView;
/** The roles table (`GET /api/roles`); `sso` says whether single sign-on is configured. */
export type Roles = Wire.RoleList;

/** The request one change to a person sends, shown before it is confirmed. */
export interface PersonRequest {
  method: 'PATCH' | 'DELETE';
  endpoint: string;
  body: Wire.UserChange | null;
}

/** What an admin may do to a person. */
export type PersonChange = 'deactivate' | 'reactivate' | 'delete';

/** The request `change` sends for `person`. */
export function requestFor(person: Person, change: PersonChange): PersonRequest {
  const endpoint = `/api/users/${encodeURIComponent(person.id)}`;
  return change === 'delete' ? { method: 'DELETE', endpoint, body: null } : { method: 'PATCH', endpoint, body: { active: change === 'reactivate' } };
}

/** A person's name as lists show it: their display name, else user name, email or subject. */
export function personName(p: Person): string {
  return p.display_name || p.user_name || p.email || p.subject;
}

/** Every group a person is in, by name: those their sign-in named and those provisioned. */
export function groupsOf(p: Person): string[] {
  return [...new Set([...p.groups, ...p.scim_groups.map((g) => g.display_name)])];
}

/** Whether `p` matches the filter text by name, user name, email or one of their groups. */
export function matchesPerson(p: Person, filter: string): boolean {
  const needle = filter.trim().toLowerCase();
  if (!needle) return true;
  return [p.display_name, p.user_name, p.email, ...groupsOf(p)].some((s) => (s ?? '').toLowerCase().includes(needle));
}

/** The admin API's people calls (through `api`, so a 401 ends the session as anywhere). */
export const peopleApi = {
  users: (signal?: AbortSignal) => api.users(signal),
  groups: (signal?: AbortSignal) => api.groups(signal),
  roles: (signal?: AbortSignal) => api.roles(signal),
  /** Sends `change` for `person`: the person as they now are, or nothing once deleted. */
  change: (person: Person, change: PersonChange): Promise<Person | undefined> =>
    change === 'delete' ? api.deleteUser(person.id) : api.setUserActive(person.id, change === 'reactivate'),
};
