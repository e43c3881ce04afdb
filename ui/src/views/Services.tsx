// Services: each of the tenant's upstreams with its health, base URL and whether a token
// is set. An admin can change a URL and its token (the server probes it at once; a blank
// token keeps the current one on the same origin); the write scope runs a poll round;
// others see no controls.

import { useState, type FormEvent } from 'react';
import { api, ApiError, canAdminister, canWrite, type HealthStatus, type ServiceView } from '../api';
import { Panel } from '../components/States';
import { SERVICE_LABEL, ago } from '../format';
import { useSession } from '../session';
import { useFetched } from '../useFetched';

const HEALTH_TONE: Record<HealthStatus, string> = {
  online: 'green',
  degraded: 'amber',
  unauthorized: 'amber',
  offline: 'red',
  error: 'red',
  unknown: 'grey',
};

function UrlForm({ service, onSaved, onCancel }: { service: ServiceView; onSaved: () => void; onCancel: () => void }) {
  const [url, setUrl] = useState(service.url ?? '');
  const [token, setToken] = useState('');
  const [clear, setClear] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = `url-${service.service}`;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.setServiceUrl(service.service, url.trim(), clear ? '' : token.trim() || undefined);
      onSaved();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'the server could not be reached');
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="url-form" onSubmit={submit}>
      <label htmlFor={id}>Base URL of {SERVICE_LABEL[service.service]}</label>
      <input id={id} type="url" required value={url} onChange={(e) => setUrl(e.target.value)} placeholder="http://host:port" aria-invalid={error !== null} aria-describedby={error ? `${id}-error` : undefined} />
      <label htmlFor={`${id}-token`}>Token of {SERVICE_LABEL[service.service]}</label>
      <input
        id={`${id}-token`}
        type="password"
        autoComplete="off"
        value={token}
        disabled={clear}
        onChange={(e) => setToken(e.target.value)}
        placeholder={service.token_set ? 'blank keeps the current token on the same host' : 'none'}
      />
      {service.token_set && (
        <label className="small">
          <input type="checkbox" checked={clear} onChange={(e) => setClear(e.target.checked)} /> Send no token
        </label>
      )}
      <button type="submit" disabled={busy}>
        Save
      </button>
      <button type="button" className="secondary" onClick={onCancel}>
        Cancel
      </button>
      {error && (
        <p id={`${id}-error`} className="note note-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

function ServiceRow({ service, editable, onChanged }: { service: ServiceView; editable: boolean; onChanged: () => void }) {
  const [editing, setEditing] = useState(false);
  const h = service.health;
  return (
    <li className="service" data-service={service.service}>
      <div className="service-head">
        <h2>{SERVICE_LABEL[service.service] ?? service.service}</h2>
        <span className={`badge tone-${HEALTH_TONE[h.status] ?? 'grey'}`} data-health={h.status}>
          {h.status}
        </span>
        {h.latency_ms !== null && <span className="muted small">{h.latency_ms} ms</span>}
        <span className="muted small">checked {ago(h.checked_at)}</span>
      </div>
      {h.detail && <p className="muted small">{h.detail}</p>}
      {Object.keys(service.feeds ?? {}).length > 0 && (
        <ul className="feeds small" aria-label={`Live feeds of ${SERVICE_LABEL[service.service] ?? service.service}`}>
          {Object.entries(service.feeds ?? {}).map(([route, feed]) => (
            <li key={route} data-feed={route} data-feed-state={feed.state}>
              <code>{route}</code> <span className={`badge tone-${feed.state === 'connected' ? 'green' : 'amber'}`}>{feed.state}</span>
              {'detail' in feed && <span className="muted">: {feed.detail}</span>}
            </li>
          ))}
        </ul>
      )}
      {editing ? (
        <UrlForm
          service={service}
          onCancel={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            onChanged();
          }}
        />
      ) : (
        <p className="service-url">
          <span className="muted">URL </span>
          <code>{service.url ?? 'not configured'}</code>
          {service.configured && <span className="muted small" data-token-set={service.token_set}>{service.token_set ? ' · token set' : ' · no token'}</span>}
          {editable && (
            <button type="button" className="link" onClick={() => setEditing(true)} aria-label={`Edit the URL of ${SERVICE_LABEL[service.service]}`}>
              Edit
            </button>
          )}
        </p>
      )}
    </li>
  );
}

export function Services() {
  const session = useSession();
  const editable = canAdminister(session);
  const checkable = canWrite(session);
  const services = useFetched((signal) => api.services(signal), []);
  const [refreshing, setRefreshing] = useState(false);

  const refresh = async () => {
    setRefreshing(true);
    try {
      await api.refresh();
    } catch {
      // The reload below shows whatever health the server now holds.
    } finally {
      setRefreshing(false);
      services.reload();
    }
  };

  return (
    <section className="view" aria-labelledby="services-title">
      <div className="view-head">
        <h1 id="services-title">Services</h1>
        {checkable && (
          <button type="button" onClick={refresh} disabled={refreshing}>
            {refreshing ? 'Checking…' : 'Check now'}
          </button>
        )}
      </div>
      <Panel what="the services" data={services.data} error={services.error} onRetry={services.reload}>
        {(d) => (
          <ul className="services" aria-label="Upstream services">
            {d.services.map((s) => (
              <ServiceRow key={s.service} service={s} editable={editable} onChanged={services.reload} />
            ))}
          </ul>
        )}
      </Panel>
    </section>
  );
}
