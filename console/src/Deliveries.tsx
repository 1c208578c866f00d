import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Api, type Delivery, type DeliveryAttempt, type WebhookEndpoint } from './api.js';
import { ErrorText } from './Dialog.js';
import { whenExact } from './format.js';

/** While a delivery is pending and due within this, the panel re-reads itself (an attempt takes up to 10 s). */
const SOON_MS = 60_000;
const POLL_MS = 1500;

const outcome = (a: DeliveryAttempt) => (a.status_code === null ? (a.error ?? 'no answer') : `HTTP ${a.status_code}`);

/** One endpoint's deliveries, newest first: what was sent, what the receiver answered, what comes next. */
export function DeliveriesPanel(props: {
  api: Api;
  account: string;
  endpoint: WebhookEndpoint;
  canWrite: boolean;
  /** Bumped when a test event was just sent to this endpoint: read again. */
  version: number;
  /** A retry was asked for (the audit log re-reads). */
  onChange: () => void;
  onClose: () => void;
  onSignOut: (why?: ApiError) => void;
}) {
  const { api, account, endpoint } = props;
  const [first, setFirst] = useState<Delivery[] | undefined>();
  const [more, setMore] = useState<Delivery[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | undefined>();
  const [notice, setNotice] = useState('');
  const heading = useRef<HTMLHeadingElement>(null);

  const failed = (err: unknown) => {
    if (err instanceof ApiError && err.status === 401) props.onSignOut(err);
    else setError(err instanceof ApiError ? err.message : String(err));
  };
  /** The first page (again), or the page after `cursor`. */
  const read = async (cursor?: string) => {
    try {
      const page = await api.deliveries(account, endpoint.id, cursor);
      if (cursor) setMore((before) => [...before, ...page.data]);
      else setFirst(page.data);
      if (cursor || more.length === 0) setNext(page.next_cursor);
      setError(undefined);
    } catch (err) {
      failed(err);
    }
  };
  useEffect(() => {
    setMore([]);
    void read();
  }, [api, account, endpoint.id, props.version]);
  // Keyboard and screen-reader users land on what they asked for.
  useEffect(() => {
    heading.current?.focus();
    heading.current?.scrollIntoView({ block: 'start' });
  }, [endpoint.id]);
  // A delivery on its way: the row follows it to delivered or to its next retry.
  useEffect(() => {
    const soon = (first ?? []).some(
      (d) => d.state === 'pending' && (!d.next_attempt_at || Date.parse(d.next_attempt_at) - Date.now() < SOON_MS),
    );
    if (!soon) return undefined;
    const timer = setTimeout(() => void read(), POLL_MS);
    return () => clearTimeout(timer);
  }, [first]);

  const retry = async (d: Delivery) => {
    try {
      await api.retryDelivery(account, endpoint.id, d.id);
      setNotice(`Sending ${d.event_type} ${d.event_id} again.`);
      props.onChange();
      await read();
    } catch (err) {
      failed(err);
    }
  };

  const seen = new Set((first ?? []).map((d) => d.id));
  const rows = [...(first ?? []), ...more.filter((d) => !seen.has(d.id))];
  return (
    <section aria-labelledby="deliveries-title" class="panel">
      <h2 id="deliveries-title" ref={heading} tabIndex={-1}>
        Deliveries to <code class="url">{endpoint.url}</code>
      </h2>
      <div class="toolbar">
        <button type="button" class="secondary" onClick={() => void read()}>
          Refresh deliveries
        </button>
        <button type="button" class="secondary" onClick={props.onClose}>
          Close deliveries
        </button>
      </div>
      <p aria-live="polite" class="notice">
        {notice}
      </p>
      <ErrorText messages={error} />
      {first !== undefined && rows.length === 0 && <p>Nothing sent to this endpoint yet.</p>}
      {rows.length > 0 && (
        <table class="deliveries">
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">Created</th>
              <th scope="col">Last answer</th>
              <th scope="col">Attempts</th>
              <th scope="col">Next retry</th>
              <th scope="col">State</th>
              {props.canWrite && (
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => (
              <Row key={d.id} d={d} canWrite={props.canWrite} onRetry={() => void retry(d)} />
            ))}
          </tbody>
        </table>
      )}
      {next && (
        <button type="button" class="secondary" onClick={() => void read(next)}>
          Load more deliveries
        </button>
      )}
    </section>
  );
}

function Row({ d, canWrite, onRetry }: { d: Delivery; canWrite: boolean; onRetry: () => void }) {
  const last = d.attempt_log[0];
  return (
    <tr data-delivery-id={d.id}>
      <th scope="row">
        <code>{d.event_type}</code>
        <br />
        <span class="hint">{d.event_id}</span>
      </th>
      <td>{whenExact(d.created_at)}</td>
      <td class="answer">
        {last ? (
          <>
            <span class={last.status_code !== null && last.status_code < 300 ? 'answer-ok' : 'answer-bad'}>
              {outcome(last)}
            </span>
            <br />
            <span class="hint">{last.duration_ms.toLocaleString('en')} ms</span>
          </>
        ) : (
          '—'
        )}
      </td>
      <td>
        {d.attempt_log.length === 0 ? (
          d.attempts
        ) : (
          <details>
            <summary>
              {d.attempts} {d.attempts === 1 ? 'attempt' : 'attempts'}
            </summary>
            <ol class="attempts">
              {d.attempt_log.map((a) => (
                <li key={a.n} value={a.n}>
                  {whenExact(a.at)}: {outcome(a)}, {a.duration_ms.toLocaleString('en')} ms
                  {a.response ? (
                    <>
                      <br />
                      <code class="response">{a.response}</code>
                    </>
                  ) : null}
                </li>
              ))}
            </ol>
          </details>
        )}
      </td>
      <td>{d.state === 'pending' ? whenExact(d.next_attempt_at) : '—'}</td>
      <td>
        <span class={`status status-${d.state}`}>{d.state}</span>
      </td>
      {canWrite && (
        <td class="row-actions">
          <button type="button" class="secondary" onClick={onRetry}>
            Retry
          </button>
        </td>
      )}
    </tr>
  );
}
