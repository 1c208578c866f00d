import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, type Activity, type Api, type Issued, type Key, type Me } from './api.js';
import { AuditLog } from './AuditLog.js';
import { ActivityPanel } from './Activity.js';
import { RevokeAllDialog, RevokeDialog, RotateDialog } from './Confirm.js';
import { ErrorText } from './Dialog.js';
import { KeyForm, type KeyFormValues } from './KeyForm.js';
import { KeysTable } from './KeysTable.js';
import { SecretDialog } from './SecretDialog.js';
import { Webhooks } from './Webhooks.js';

type Open =
  | { kind: 'create' }
  | { kind: 'edit'; key: Key }
  | { kind: 'rotate'; key: Key }
  | { kind: 'revoke'; key: Key }
  | { kind: 'revoke-all' }
  | { kind: 'secret'; secret: string; title: string };

/** Settings › Integrations › API Keys for one account. */
export function App(props: {
  api: Api;
  me: Me;
  account: string;
  scopes: string[];
  onSignOut: (why?: ApiError) => void;
}) {
  const { api, account } = props;
  const canWrite = props.me.role === 'admin';
  const [env, setEnv] = useState('');
  const [status, setStatus] = useState('');
  const [rotation, setRotation] = useState('');
  const [cursors, setCursors] = useState<string[]>([]); // the cursors of the pages before this one
  const [cursor, setCursor] = useState<string | undefined>();
  const [page, setPage] = useState<{ data: Key[]; next: string | null }>({ data: [], next: null });
  const [error, setError] = useState<string | undefined>();
  const [open, setOpen] = useState<Open | undefined>();
  const [selected, setSelected] = useState<{ key: Key; data: Activity } | undefined>();
  const [version, setVersion] = useState(0); // bumped by every change made here: the audit log re-reads
  const [notice, setNotice] = useState('');

  const load = useCallback(async () => {
    const q = new URLSearchParams({ limit: '10' });
    if (env) q.set('environment', env);
    if (status) q.set('status', status);
    if (rotation) q.set('rotation', rotation);
    if (cursor) q.set('cursor', cursor);
    try {
      const res = await api.keys(account, q);
      setPage({ data: res.data, next: res.next_cursor });
      setError(undefined);
    } catch (err) {
      // An expired or withdrawn token: back to sign-in (the host page can hand over a fresh one).
      if (err instanceof ApiError && err.status === 401) props.onSignOut(err);
      else setError(err instanceof ApiError ? err.message : String(err));
    }
  }, [api, account, env, status, rotation, cursor]);
  useEffect(() => {
    void load();
  }, [load]);

  const showActivity = async (key: Key) => {
    try {
      setSelected({ key, data: await api.activity(account, key.id) });
      await load(); // reading activity writes the pending usage counts: the table's "last used" catches up
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const filter = (set: (v: string) => void) => (e: Event) => {
    set((e.currentTarget as HTMLSelectElement).value);
    setCursors([]);
    setCursor(undefined);
  };
  const afterChange = async (text: string, next?: Open) => {
    setOpen(next);
    setNotice(text);
    setVersion((v) => v + 1);
    await load();
  };
  const issued = (k: Issued, title: string) =>
    afterChange(`${title}: ${k.redacted}`, { kind: 'secret', secret: k.secret, title });

  const create = async (v: KeyFormValues) => {
    const body: Record<string, unknown> = { label: v.label, scopes: v.scopes, environment: v.environment };
    if (v.allowed_ips.length > 0) body.allowed_ips = v.allowed_ips;
    if (v.expires_at) body.expires_at = v.expires_at;
    await issued(await api.create(account, body), 'Your new API key');
  };
  const edit = (k: Key) => async (v: KeyFormValues) => {
    const body: Record<string, unknown> = {};
    if (v.label !== k.label) body.label = v.label;
    if (v.scopes.join() !== k.scopes.join()) body.scopes = v.scopes;
    if (v.allowed_ips.join() !== k.allowed_ips.join()) body.allowed_ips = v.allowed_ips;
    if (
      v.expires_at !== k.expires_at &&
      !(v.expires_at && k.expires_at && Date.parse(v.expires_at) === Date.parse(k.expires_at))
    )
      body.expires_at = v.expires_at;
    if (Object.keys(body).length > 0) await api.update(account, k.id, body);
    await afterChange(`Saved ${v.label}.`);
  };

  /** Disable or enable a key (not a revoke: it can be undone); the API holds it on every replica before it answers. */
  const toggle = async (k: Key) => {
    try {
      await api.update(account, k.id, { enabled: !k.enabled });
      await afterChange(`${k.enabled ? 'Disabled' : 'Enabled'} ${k.label}.`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) props.onSignOut(err);
      else setError(err instanceof ApiError ? err.message : String(err));
    }
  };

  return (
    <>
      <header class="top">
        <p class="crumbs">
          Settings › Integrations › <strong>API Keys</strong>
        </p>
        <p>
          Account <code>{account}</code> · signed in as <strong>{props.me.name}</strong> ({props.me.role}){' '}
          <button type="button" class="link" onClick={() => props.onSignOut()}>
            Sign out
          </button>
        </p>
      </header>
      <main>
        <h1>API Keys</h1>
        <p aria-live="polite" class="notice">
          {notice}
        </p>
        <ErrorText messages={error} />
        <div class="toolbar">
          <label for="filter-env">Environment</label>
          <select id="filter-env" value={env} onChange={filter(setEnv)}>
            <option value="">All</option>
            <option value="live">Live</option>
            <option value="test">Test</option>
          </select>
          <label for="filter-status">Status</label>
          <select id="filter-status" value={status} onChange={filter(setStatus)}>
            <option value="">All</option>
            <option value="active">Active</option>
            <option value="revoked">Revoked</option>
            <option value="expired">Expired</option>
          </select>
          <label for="filter-rotation">Rotation</label>
          <select id="filter-rotation" value={rotation} onChange={filter(setRotation)}>
            <option value="">Any</option>
            <option value="due">Due (within 14 days)</option>
            <option value="overdue">Overdue</option>
          </select>
          {canWrite && (
            <button type="button" class="primary" onClick={() => setOpen({ kind: 'create' })}>
              Generate New Key
            </button>
          )}
        </div>
        <KeysTable
          keys={page.data}
          canWrite={canWrite}
          actions={{
            activity: (k) => void showActivity(k),
            edit: (k) => setOpen({ kind: 'edit', key: k }),
            toggle: (k) => void toggle(k),
            rotate: (k) => setOpen({ kind: 'rotate', key: k }),
            revoke: (k) => setOpen({ kind: 'revoke', key: k }),
          }}
        />
        <nav class="pager" aria-label="Key pages">
          <button
            type="button"
            class="secondary"
            disabled={cursors.length === 0}
            onClick={() => {
              setCursor(cursors[cursors.length - 1]);
              setCursors(cursors.slice(0, -1));
            }}
          >
            Previous page
          </button>
          <button
            type="button"
            class="secondary"
            disabled={!page.next}
            onClick={() => {
              setCursors([...cursors, cursor ?? '']);
              setCursor(page.next ?? undefined);
            }}
          >
            Next page
          </button>
        </nav>

        {selected && (
          <ActivityPanel label={selected.key.label} data={selected.data} onClose={() => setSelected(undefined)} />
        )}

        <Webhooks
          api={api}
          account={account}
          canWrite={canWrite}
          onChange={() => setVersion((v) => v + 1)}
          onSignOut={props.onSignOut}
        />

        <AuditLog api={api} account={account} version={version} />

        {canWrite && (
          <section aria-labelledby="danger-title" class="panel danger-zone">
            <h2 id="danger-title">Emergency</h2>
            <p>Revoke every active key of one environment of this account, everywhere at once.</p>
            <button type="button" class="danger" onClick={() => setOpen({ kind: 'revoke-all' })}>
              Revoke all keys
            </button>
          </section>
        )}
      </main>

      {open?.kind === 'create' && (
        <KeyForm scopes={props.scopes} onSubmit={create} onClose={() => setOpen(undefined)} />
      )}
      {open?.kind === 'edit' && (
        <KeyForm
          scopes={props.scopes}
          existing={open.key}
          onSubmit={edit(open.key)}
          onClose={() => setOpen(undefined)}
        />
      )}
      {open?.kind === 'revoke' && (
        <RevokeDialog
          keyRow={open.key}
          onClose={() => setOpen(undefined)}
          onRevoke={async (reason) => {
            await api.revoke(account, open.key.id, reason || undefined);
            await afterChange(`Revoked ${open.key.label}.`);
          }}
        />
      )}
      {open?.kind === 'rotate' && (
        <RotateDialog
          keyRow={open.key}
          onClose={() => setOpen(undefined)}
          onRotate={async (grace) =>
            issued(await api.rotate(account, open.key.id, grace), `The new key for ${open.key.label}`)
          }
        />
      )}
      {open?.kind === 'revoke-all' && (
        <RevokeAllDialog
          account={account}
          onClose={() => setOpen(undefined)}
          onRevokeAll={async (e, reason) => {
            const r = await api.revokeAll(account, e, reason || undefined);
            await afterChange(`Revoked ${r.revoked} ${e} keys.`);
          }}
        />
      )}
      {open?.kind === 'secret' && (
        <SecretDialog secret={open.secret} title={open.title} onClose={() => setOpen(undefined)} />
      )}
    </>
  );
}
