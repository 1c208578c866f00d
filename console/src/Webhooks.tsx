import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, type Api, type WebhookEndpoint, type WebhookEndpointWithSecret } from './api.js';
import { DeliveriesPanel } from './Deliveries.js';
import { ErrorText } from './Dialog.js';
import { when } from './format.js';
import { SecretDialog } from './SecretDialog.js';
import { DeleteEndpointDialog, EndpointForm, RotateSecretDialog, type EndpointFormValues } from './WebhookDialogs.js';

type Open =
  | { kind: 'create' }
  | { kind: 'edit'; endpoint: WebhookEndpoint }
  | { kind: 'delete'; endpoint: WebhookEndpoint }
  | { kind: 'rotate'; endpoint: WebhookEndpoint }
  | { kind: 'secret'; secret: string; title: string };

const DISABLED_BECAUSE: Record<'gone' | 'failing', string> = {
  gone: 'the receiver answered 410 Gone',
  failing: 'every attempt failed for 3 days',
};

/** Settings › Integrations › Webhooks of one account: its endpoints, their signing secrets (once) and deliveries. */
export function Webhooks(props: {
  api: Api;
  account: string;
  canWrite: boolean;
  /** Something was changed here: the audit log re-reads. */
  onChange: () => void;
  onSignOut: (why?: ApiError) => void;
}) {
  const { api, account, canWrite } = props;
  const [endpoints, setEndpoints] = useState<WebhookEndpoint[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [notice, setNotice] = useState('');
  const [open, setOpen] = useState<Open | undefined>();
  const [shown, setShown] = useState<{ id: string; version: number } | undefined>();

  const failed = (err: unknown) => {
    if (err instanceof ApiError && err.status === 401) props.onSignOut(err);
    else setError(err instanceof ApiError ? err.message : String(err));
  };
  const load = useCallback(async () => {
    try {
      setEndpoints((await api.endpoints(account)).data);
      setError(undefined);
    } catch (err) {
      failed(err);
    }
  }, [api, account]);
  useEffect(() => {
    void load();
  }, [load]);

  const afterChange = async (text: string, next?: Open) => {
    setOpen(next);
    setNotice(text);
    props.onChange();
    await load();
  };
  const withSecret = (e: WebhookEndpointWithSecret, text: string, title: string) =>
    afterChange(text, { kind: 'secret', secret: e.secret, title });

  const create = async (v: EndpointFormValues) => {
    const body: Record<string, unknown> = { url: v.url, events: v.events };
    if (v.description) body.description = v.description;
    const e = await api.createEndpoint(account, body);
    await withSecret(e, `Added ${e.url}.`, 'The signing secret of your new endpoint');
  };
  const edit = (e: WebhookEndpoint) => async (v: EndpointFormValues) => {
    const body: Record<string, unknown> = {};
    if (v.url !== e.url) body.url = v.url;
    if ([...v.events].sort().join() !== [...e.events].sort().join()) body.events = v.events;
    if (v.description !== (e.description ?? '')) body.description = v.description || null;
    if (Object.keys(body).length > 0) await api.updateEndpoint(account, e.id, body);
    await afterChange(`Saved ${v.url}.`);
  };
  /** Turn sending off or on again (on again also clears why the service turned it off; pending deliveries go out). */
  const toggle = async (e: WebhookEndpoint) => {
    try {
      await api.updateEndpoint(account, e.id, { enabled: !e.enabled });
      await afterChange(`${e.enabled ? 'Disabled' : 'Enabled'} ${e.url}.`);
    } catch (err) {
      failed(err);
    }
  };
  const sendTest = async (e: WebhookEndpoint) => {
    try {
      const sent = await api.testEndpoint(account, e.id);
      setNotice(`Sent a test event (${sent.event_id}) to ${e.url}.`);
      props.onChange();
      setShown((s) => ({ id: e.id, version: (s?.version ?? 0) + 1 }));
    } catch (err) {
      failed(err);
    }
  };

  const selected = shown && endpoints?.find((e) => e.id === shown.id);
  return (
    <section aria-labelledby="webhooks-title" class="panel">
      <h2 id="webhooks-title">Webhooks</h2>
      <div class="toolbar">
        <p class="hint">
          Events about this account's keys are POSTed to these URLs, signed with each endpoint's secret (Standard
          Webhooks).
        </p>
        {canWrite && (
          <button type="button" class="primary" onClick={() => setOpen({ kind: 'create' })}>
            Add endpoint
          </button>
        )}
      </div>
      <p aria-live="polite" class="notice">
        {notice}
      </p>
      <ErrorText messages={error} />
      {endpoints !== undefined && endpoints.length === 0 && <p>No webhook endpoints yet.</p>}
      {endpoints !== undefined && endpoints.length > 0 && (
        <table class="webhooks">
          <thead>
            <tr>
              <th scope="col">URL</th>
              <th scope="col">Events</th>
              <th scope="col">Created</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {endpoints.map((e) => (
              <tr key={e.id} data-endpoint-id={e.id}>
                <th scope="row">
                  <code class="url">{e.url}</code>
                  {e.description && (
                    <>
                      <br />
                      <span class="hint">{e.description}</span>
                    </>
                  )}
                </th>
                <td class="scopes">
                  {e.events.map((t) => (
                    <code key={t}>{t}</code>
                  ))}
                </td>
                <td>{when(e.created_at)}</td>
                <td>
                  {e.enabled ? (
                    <span class="status status-active">enabled</span>
                  ) : (
                    <span class="status status-disabled">disabled</span>
                  )}
                  {e.disabled_reason && (
                    <>
                      <br />
                      <span class="hint">by the service: {DISABLED_BECAUSE[e.disabled_reason]}</span>
                    </>
                  )}
                  {e.failing_since && (
                    <>
                      <br />
                      <strong class="failing">failing since {when(e.failing_since)}</strong>
                    </>
                  )}
                  {e.previous_secret_until && (
                    <>
                      <br />
                      <span class="hint">old secret signs too until {when(e.previous_secret_until)}</span>
                    </>
                  )}
                </td>
                <td class="row-actions">
                  <button
                    type="button"
                    class="link"
                    onClick={() => setShown((s) => ({ id: e.id, version: s?.version ?? 0 }))}
                  >
                    Deliveries
                  </button>
                  {canWrite && (
                    <>
                      <button
                        type="button"
                        class="secondary"
                        disabled={!e.enabled}
                        title={e.enabled ? undefined : 'Enable the endpoint first'}
                        onClick={() => void sendTest(e)}
                      >
                        Send test event
                      </button>
                      <button type="button" class="secondary" onClick={() => setOpen({ kind: 'edit', endpoint: e })}>
                        Edit
                      </button>
                      <button type="button" class="secondary" onClick={() => void toggle(e)}>
                        {e.enabled ? 'Disable' : 'Enable'}
                      </button>
                      <button type="button" class="secondary" onClick={() => setOpen({ kind: 'rotate', endpoint: e })}>
                        Rotate secret
                      </button>
                      <button type="button" class="danger" onClick={() => setOpen({ kind: 'delete', endpoint: e })}>
                        Delete
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      {selected && shown && (
        <DeliveriesPanel
          api={api}
          account={account}
          endpoint={selected}
          canWrite={canWrite}
          version={shown.version}
          onChange={props.onChange}
          onClose={() => setShown(undefined)}
          onSignOut={props.onSignOut}
        />
      )}

      {open?.kind === 'create' && <EndpointForm onSubmit={create} onClose={() => setOpen(undefined)} />}
      {open?.kind === 'edit' && (
        <EndpointForm existing={open.endpoint} onSubmit={edit(open.endpoint)} onClose={() => setOpen(undefined)} />
      )}
      {open?.kind === 'delete' && (
        <DeleteEndpointDialog
          endpoint={open.endpoint}
          onClose={() => setOpen(undefined)}
          onDelete={async () => {
            await api.deleteEndpoint(account, open.endpoint.id);
            if (shown?.id === open.endpoint.id) setShown(undefined);
            await afterChange(`Deleted ${open.endpoint.url}.`);
          }}
        />
      )}
      {open?.kind === 'rotate' && (
        <RotateSecretDialog
          endpoint={open.endpoint}
          onClose={() => setOpen(undefined)}
          onRotate={async () =>
            withSecret(
              await api.rotateEndpointSecret(account, open.endpoint.id),
              `Rotated the signing secret of ${open.endpoint.url}.`,
              `The new signing secret of ${open.endpoint.url}`,
            )
          }
        />
      )}
      {open?.kind === 'secret' && (
        <SecretDialog
          secret={open.secret}
          title={open.title}
          label="Signing secret"
          noun="signing secret"
          advice="Give it to the receiver, which verifies every delivery with it."
          onClose={() => setOpen(undefined)}
        />
      )}
    </section>
  );
}
