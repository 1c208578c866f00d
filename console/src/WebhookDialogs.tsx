import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, type WebhookEndpoint } from './api.js';
import { useAction } from './Confirm.js';
import { Dialog, ErrorText } from './Dialog.js';
import { WEBHOOK_EVENTS } from './webhook-events.js';

export interface EndpointFormValues {
  url: string;
  events: string[];
  description: string;
}

/** Add endpoint (no `existing`) or Edit: URL, one checkbox per event type, description. */
export function EndpointForm(props: {
  existing?: WebhookEndpoint;
  onSubmit: (v: EndpointFormValues) => Promise<void>;
  onClose: () => void;
}) {
  const e = props.existing;
  const [url, setUrl] = useState(e?.url ?? '');
  const [events, setEvents] = useState<string[]>(e?.events ?? []);
  const [description, setDescription] = useState(e?.description ?? '');
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const about = (f: string) => error?.about(f) ?? [];
  const invalid = (f: string) => (about(f).length > 0 ? { 'aria-invalid': true, 'aria-describedby': `err-${f}` } : {});

  const submit = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await props.onSubmit({ url: url.trim(), events, description: description.trim() });
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
    } finally {
      setBusy(false);
    }
  };
  const toggle = (t: string) => setEvents(events.includes(t) ? events.filter((x) => x !== t) : [...events, t]);
  const fieldPaths = ['url', 'events', 'description'];
  const general =
    error && error.errors.every((x) => !fieldPaths.some((f) => x.path === f || x.path.startsWith(`${f}/`)))
      ? error.message
      : undefined;

  return (
    <Dialog id="endpoint-form" title={e ? 'Edit webhook endpoint' : 'Add webhook endpoint'} onClose={props.onClose}>
      <form onSubmit={(ev) => void submit(ev)} noValidate>
        <label for="w-url">
          URL <span class="hint">(where events are POSTed; https:)</span>
        </label>
        <input
          id="w-url"
          type="url"
          value={url}
          onInput={(ev) => setUrl(ev.currentTarget.value)}
          placeholder="https://hooks.example.com/otesse"
          autoComplete="off"
          spellcheck={false}
          required
          {...invalid('url')}
        />
        <ErrorText id="err-url" messages={about('url')} />

        <fieldset {...invalid('events')}>
          <legend>Events</legend>
          {WEBHOOK_EVENTS.map(([type, words]) => (
            <div class="check" key={type}>
              <input
                type="checkbox"
                id={`event-${type}`}
                checked={events.includes(type)}
                onChange={() => toggle(type)}
              />
              <label for={`event-${type}`}>
                <code>{type}</code> <span class="hint">{words}</span>
              </label>
            </div>
          ))}
        </fieldset>
        <ErrorText id="err-events" messages={about('events')} />

        <label for="w-description">
          Description <span class="hint">(optional)</span>
        </label>
        <input
          id="w-description"
          value={description}
          maxLength={500}
          onInput={(ev) => setDescription(ev.currentTarget.value)}
          {...invalid('description')}
        />
        <ErrorText id="err-description" messages={about('description')} />

        <ErrorText messages={general} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            {e ? 'Save' : 'Add endpoint'}
          </button>
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** A yes-or-cancel question about one endpoint: `text` says what the button does. */
function ConfirmEndpoint(props: {
  id: string;
  title: string;
  text: ComponentChildren;
  button: string;
  danger?: boolean;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  const { error, busy, run } = useAction();
  return (
    <Dialog id={props.id} title={props.title} onClose={props.onClose}>
      <form onSubmit={(e) => void run(e, props.onConfirm)}>
        <p>{props.text}</p>
        <ErrorText messages={error?.message} />
        <div class="actions">
          <button type="submit" class={props.danger ? 'danger' : undefined} disabled={busy}>
            {props.button}
          </button>
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** Delete: confirmation naming the URL. */
export function DeleteEndpointDialog(props: {
  endpoint: WebhookEndpoint;
  onDelete: () => Promise<void>;
  onClose: () => void;
}) {
  return (
    <ConfirmEndpoint
      id="delete-endpoint"
      title="Delete this webhook endpoint?"
      button="Delete endpoint"
      danger
      onConfirm={props.onDelete}
      onClose={props.onClose}
      text={
        <>
          No more events go to <code class="url">{props.endpoint.url}</code>; its pending deliveries are dropped. This
          cannot be undone.
        </>
      }
    />
  );
}

/** Rotate the signing secret: the old one keeps signing beside the new one for 24 hours. */
export function RotateSecretDialog(props: {
  endpoint: WebhookEndpoint;
  onRotate: () => Promise<void>;
  onClose: () => void;
}) {
  return (
    <ConfirmEndpoint
      id="rotate-secret"
      title="Rotate the signing secret?"
      button="Rotate secret"
      onConfirm={props.onRotate}
      onClose={props.onClose}
      text={
        <>
          A new secret signs every delivery to <code class="url">{props.endpoint.url}</code> from now on. The old one
          keeps signing beside it for 24 hours, so the receiver can switch over.
        </>
      }
    />
  );
}
