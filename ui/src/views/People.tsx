// People, for admins: the tenant's users (where they came from, their groups, the scopes
// those grant, whether they may sign in and when they last did), its groups with their
// members, and the roles table that maps groups to scopes. Deactivating, reactivating or
// deleting a person first shows the exact request; it is sent when the admin confirms.

import { Fragment, useEffect, useId, useRef, useState } from 'react';
import { ApiError, canAdminister } from '../api';
import { reasonOf } from '../components/ProposalCard';
import { Panel } from '../components/States';
import { ago, pretty, when } from '../format';
import { groupsOf, matchesPerson, peopleApi, personName, requestFor, type Group, type Person, type PersonChange, type PersonList, type Roles } from '../people';
import { useSession } from '../session';
import { useFetched } from '../useFetched';

const CHANGE_LABEL: Record<PersonChange, string> = { deactivate: 'Deactivate', reactivate: 'Reactivate', delete: 'Delete' };

const CHANGE_EFFECT: Record<PersonChange, string> = {
  deactivate: 'They can no longer sign in, and every session they have open ends at once.',
  reactivate: 'They may sign in again, with the scopes their groups grant.',
  delete: 'They are removed from the tenant and from its groups, and their sessions end.',
};

const CHANGE_DONE: Record<PersonChange, string> = {
  deactivate: 'is deactivated: their sessions have ended',
  reactivate: 'is active again',
  delete: 'is deleted',
};

/** How each person came to exist here: their first sign-in, or a SCIM client. */
const SOURCE_LABEL: Record<string, string> = { sso: 'SSO', scim: 'SCIM' };

function Scopes({ scopes }: { scopes: string[] }) {
  if (scopes.length === 0) return <span className="muted">none</span>;
  return (
    <ul className="scope-list">
      {scopes.map((s) => (
        <li key={s}>
          <code>{s}</code>
        </li>
      ))}
    </ul>
  );
}

/** A time as how long ago, with the exact time on hover and for screen readers. */
function Ago({ iso }: { iso: string }) {
  return (
    <time dateTime={iso} title={when(iso)}>
      {ago(iso)}
      <span className="sr-only"> ({when(iso)})</span>
    </time>
  );
}

function day(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleDateString(undefined, { dateStyle: 'medium' });
}

/** A refusal for want of the admin scope, said once for the whole view. */
function forbidden(error: Error | null): error is ApiError {
  return error instanceof ApiError && error.status === 403;
}

interface ConfirmProps {
  person: Person;
  change: PersonChange;
  /** Called with the person as they now are (`null`: deleted). */
  onDone: (person: Person | null) => void;
  onCancel: () => void;
}

/** One change to a person, shown as the request it sends, sent when confirmed. */
function ConfirmChange({ person, change, onDone, onCancel }: ConfirmProps) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const titleId = useId();
  const box = useRef<HTMLElement>(null);
  const request = requestFor(person, change);
  const name = personName(person);

  // Keyboard users land on what they are asked to confirm.
  useEffect(() => box.current?.focus(), []);

  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      const answer = await peopleApi.change(person, change);
      // A server that answers without the person still made the change it was asked for.
      const now = answer && typeof answer === 'object' && 'id' in answer ? answer : { ...person, active: change === 'reactivate' };
      onDone(change === 'delete' ? null : now);
    } catch (e) {
      setError(reasonOf(e));
      setBusy(false);
    }
  };

  return (
    <article ref={box} tabIndex={-1} className="proposal person-confirm" aria-labelledby={titleId} data-status="prepared" data-change={change}>
      <h3 id={titleId} className="proposal-title">
        {CHANGE_LABEL[change]} {name}?
      </h3>
      <p className="proposal-rationale">{CHANGE_EFFECT[change]}</p>
      {person.source === 'scim' && (
        <p className="muted small" data-scim-note>
          A SCIM client provisions this person: its next update may change this back, so change them there too.
        </p>
      )}
      <ol className="steps" aria-label="The request it sends">
        <li>
          <p className="step-line">
            <code className="request">
              <span className="method">{request.method}</span> {request.endpoint}
            </code>
          </p>
          {request.body && (
            <pre className="payload" tabIndex={0} role="group" aria-label="Request body">
              {pretty(request.body)}
            </pre>
          )}
        </li>
      </ol>
      <div className="proposal-buttons">
        <button type="button" className={change === 'reactivate' ? undefined : 'danger'} onClick={confirm} disabled={busy} aria-describedby={titleId}>
          {busy ? 'Sending…' : `Confirm: ${CHANGE_LABEL[change].toLowerCase()}`}
        </button>
        <button type="button" className="secondary" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
      {error && (
        <p className="note note-error" role="alert">
          Refused: {error}
        </p>
      )}
    </article>
  );
}

interface UsersProps {
  users: Person[];
  onChanged: (person: Person, change: PersonChange, now: Person | null) => void;
}

function UsersTable({ users, onChanged }: UsersProps) {
  const [filter, setFilter] = useState('');
  const [pending, setPending] = useState<{ id: string; change: PersonChange } | null>(null);
  const trigger = useRef<HTMLButtonElement | null>(null);
  const [refocus, setRefocus] = useState(0);
  // Cancelling puts the keyboard back on the button that asked, once the step is gone.
  useEffect(() => {
    if (refocus > 0) trigger.current?.focus();
  }, [refocus]);
  const shown = users.filter((p) => matchesPerson(p, filter));
  const ask = (p: Person, change: PersonChange, button: HTMLButtonElement) => {
    trigger.current = button;
    setPending({ id: p.id, change });
  };
  const cancel = () => {
    setPending(null);
    setRefocus((n) => n + 1);
  };

  if (users.length === 0) {
    return <p className="muted">No one yet: people appear here after their first single sign-on, or when a SCIM client provisions them.</p>;
  }
  return (
    <>
      <div className="filters">
        <label className="grow">
          Filter people
          <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="Name, email or group" />
        </label>
        <p className="muted small" role="status" data-people-count>
          {shown.length === users.length ? `${users.length} ${users.length === 1 ? 'person' : 'people'}` : `${shown.length} of ${users.length} people`}
        </p>
      </div>
      {shown.length === 0 ? (
        <p className="muted">No one matches “{filter.trim()}”.</p>
      ) : (
        <div className="table-scroll">
          <table className="table people">
            <caption className="sr-only">Users, oldest first</caption>
            <thead>
              <tr>
                <th scope="col">Person</th>
                <th scope="col">Source</th>
                <th scope="col">Groups</th>
                <th scope="col">Scopes granted</th>
                <th scope="col">State</th>
                <th scope="col">Last sign-in</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((p) => {
                const name = personName(p);
                const open = pending?.id === p.id ? pending : null;
                return (
                  <Fragment key={p.id}>
                    <tr data-person-id={p.id} data-active={p.active}>
                      <th scope="row">
                        {name}
                        {p.email && p.email !== name && <span className="muted small block">{p.email}</span>}
                      </th>
                      <td>
                        <span className="badge tone-grey" data-source={p.source}>
                          {SOURCE_LABEL[p.source] ?? p.source}
                        </span>
                      </td>
                      <td>{groupsOf(p).length ? groupsOf(p).join(', ') : <span className="muted">none</span>}</td>
                      <td>
                        <Scopes scopes={p.scopes} />
                      </td>
                      <td>
                        <span className={`badge tone-${p.active ? 'green' : 'amber'}`} data-state>
                          {p.active ? 'active' : 'inactive'}
                        </span>
                      </td>
                      <td className="small">{p.last_sign_in_at ? <Ago iso={p.last_sign_in_at} /> : <span className="muted">never</span>}</td>
                      <td className="small">
                        <time dateTime={p.created_at} title={when(p.created_at)}>
                          {day(p.created_at)}
                        </time>
                      </td>
                      <td>
                        <div className="person-actions">
                          {(p.active ? (['deactivate', 'delete'] as const) : (['reactivate', 'delete'] as const)).map((change) => (
                            <button
                              key={change}
                              type="button"
                              className="secondary"
                              aria-label={`${CHANGE_LABEL[change]} ${name}`}
                              aria-expanded={open?.change === change}
                              onClick={(e) => ask(p, change, e.currentTarget)}
                            >
                              {CHANGE_LABEL[change]}
                            </button>
                          ))}
                        </div>
                      </td>
                    </tr>
                    {open && (
                      <tr className="confirm-row">
                        <td colSpan={8}>
                          <ConfirmChange
                            key={open.change}
                            person={p}
                            change={open.change}
                            onCancel={cancel}
                            onDone={(now) => {
                              setPending(null);
                              onChanged(p, open.change, now);
                            }}
                          />
                        </td>
                      </tr>
                    )}
                  </Fragment>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function GroupsTable({ groups }: { groups: Group[] }) {
  if (groups.length === 0) return <p className="muted">No groups yet.</p>;
  return (
    <div className="table-scroll">
      <table className="table groups">
        <caption className="sr-only">Groups</caption>
        <thead>
          <tr>
            <th scope="col">Group</th>
            <th scope="col">Members</th>
            <th scope="col">Scopes granted</th>
          </tr>
        </thead>
        <tbody>
          {groups.map((g) => (
            <tr key={g.id} data-group-id={g.id}>
              <th scope="row">
                {g.display_name}
                {g.external_id && <span className="muted small block">external id {g.external_id}</span>}
              </th>
              <td>
                <span data-member-count>
                  {g.members.length} {g.members.length === 1 ? 'member' : 'members'}
                </span>
                {g.members.length > 0 && (
                  <ul className="member-list small" aria-label={`Members of ${g.display_name}`}>
                    {g.members.map((m) => (
                      <li key={m.id}>{m.label}</li>
                    ))}
                  </ul>
                )}
              </td>
              <td>
                <Scopes scopes={g.scopes} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RolesTable({ roles }: { roles: Roles }) {
  if (!roles.sso) {
    return (
      <p className="note" data-roles-empty>
        Single sign-on is not configured here, so there is no roles table: no group grants any scope.
      </p>
    );
  }
  if (roles.roles.length === 0) {
    return (
      <p className="note" data-roles-empty>
        The roles table is empty: no group grants any scope.
      </p>
    );
  }
  return (
    <table className="table roles">
      <caption className="sr-only">Roles: the scopes each group grants</caption>
      <thead>
        <tr>
          <th scope="col">Group</th>
          <th scope="col">Scopes</th>
        </tr>
      </thead>
      <tbody>
        {roles.roles.map((r) => (
          <tr key={r.group} data-role-group={r.group}>
            <th scope="row">{r.group}</th>
            <td>
              <Scopes scopes={r.scopes} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The users as last answered, with the changes made here since applied on top. */
function applied(list: PersonList, changes: Map<string, Person | null>): Person[] {
  return list.users.flatMap((p) => {
    if (!changes.has(p.id)) return [p];
    const now = changes.get(p.id);
    return now ? [now] : [];
  });
}

function PeopleAdmin() {
  const users = useFetched((signal) => peopleApi.users(signal), [], { live: false });
  const groups = useFetched((signal) => peopleApi.groups(signal), [], { live: false });
  const roles = useFetched((signal) => peopleApi.roles(signal), [], { live: false });
  // Changes made here, kept until a fresh list (which has them) replaces the one they patch.
  const [changes, setChanges] = useState<{ base: PersonList | null; byId: Map<string, Person | null> }>({ base: null, byId: new Map() });
  const [outcome, setOutcome] = useState<string | null>(null);
  const outcomeRef = useRef<HTMLParagraphElement>(null);
  const [focusOutcome, setFocusOutcome] = useState(0);
  useEffect(() => {
    if (focusOutcome > 0) outcomeRef.current?.focus();
  }, [focusOutcome]);

  const refused = [users.error, groups.error, roles.error].find(forbidden);
  if (refused) {
    return (
      <p className="note note-error" role="alert">
        The server refused to show people: managing people needs the admin scope ({refused.message}).
      </p>
    );
  }

  const changed = (person: Person, change: PersonChange, now: Person | null) => {
    setChanges((c) => {
      const byId = new Map(c.base === users.data ? c.byId : []);
      byId.set(person.id, now);
      return { base: users.data, byId };
    });
    setOutcome(`${personName(person)} ${CHANGE_DONE[change]}.`);
    setFocusOutcome((n) => n + 1);
    users.reload();
    groups.reload();
  };

  return (
    <>
      <section className="panel" aria-labelledby="people-users">
        <h2 id="people-users">Users</h2>
        <p ref={outcomeRef} tabIndex={-1} className={outcome ? 'note' : 'sr-only'} role="status" data-outcome>
          {outcome}
        </p>
        <Panel what="the users" data={users.data} error={users.error} onRetry={users.reload}>
          {(list) => <UsersTable users={changes.base === list ? applied(list, changes.byId) : list.users} onChanged={changed} />}
        </Panel>
      </section>
      <div className="grid-2">
        <section className="panel" aria-labelledby="people-groups">
          <h2 id="people-groups">Groups</h2>
          <Panel what="the groups" data={groups.data} error={groups.error} onRetry={groups.reload}>
            {(list) => <GroupsTable groups={list.groups} />}
          </Panel>
        </section>
        <section className="panel" aria-labelledby="people-roles">
          <h2 id="people-roles">Roles</h2>
          <Panel what="the roles" data={roles.data} error={roles.error} onRetry={roles.reload}>
            {(r) => <RolesTable roles={r} />}
          </Panel>
        </section>
      </div>
    </>
  );
}

export function People() {
  const admin = canAdminister(useSession());
  return (
    <section className="view" aria-labelledby="people-title">
      <div className="view-head">
        <h1 id="people-title">People</h1>
      </div>
      {admin ? <PeopleAdmin /> : <p className="note">Seeing and managing people needs the admin scope.</p>}
    </section>
  );
}
