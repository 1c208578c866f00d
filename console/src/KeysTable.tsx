import type { Key } from './api.js';
import { rotationState, when } from './format.js';

export interface RowActions {
  activity(k: Key): void;
  edit(k: Key): void;
  toggle(k: Key): void;
  rotate(k: Key): void;
  revoke(k: Key): void;
}

/** The account's keys: one row each, the secret never (only `redacted`). */
export function KeysTable(props: { keys: Key[]; canWrite: boolean; actions: RowActions }) {
  if (props.keys.length === 0) return <p>No keys match.</p>;
  return (
    <table class="keys">
      <thead>
        <tr>
          <th scope="col">Label</th>
          <th scope="col">Key</th>
          <th scope="col">Environment</th>
          <th scope="col">Scopes</th>
          <th scope="col">Created</th>
          <th scope="col">Last used</th>
          <th scope="col">Rotation due</th>
          <th scope="col">Status</th>
          <th scope="col">
            <span class="visually-hidden">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {props.keys.map((k) => (
          <Row key={k.id} k={k} canWrite={props.canWrite} actions={props.actions} />
        ))}
      </tbody>
    </table>
  );
}

function Row({ k, canWrite, actions }: { k: Key; canWrite: boolean; actions: RowActions }) {
  const rotation = rotationState(k);
  const active = k.status === 'active';
  return (
    <tr data-key-id={k.id}>
      <th scope="row">{k.label}</th>
      <td>
        <code>{k.redacted}</code>
      </td>
      <td>
        <span class={`badge env-${k.environment}`}>{k.environment}</span>
      </td>
      <td class="scopes">
        {k.scopes.map((s) => (
          <code key={s}>{s}</code>
        ))}
      </td>
      <td>
        {when(k.created_at)}
        <br />
        <span class="hint">by {k.created_by}</span>
      </td>
      <td>
        {k.last_used_at ? (
          <>
            {when(k.last_used_at)}
            <br />
            <span class="hint">from {k.last_used_ip}</span>
          </>
        ) : (
          'never'
        )}
      </td>
      <td class={rotation ? `rotation-${rotation}` : undefined}>
        {when(k.rotation_due_at)}
        {rotation && (
          <>
            <br />
            <strong>{rotation === 'overdue' ? 'overdue' : 'due soon'}</strong>
          </>
        )}
      </td>
      <td>
        <span class={`status status-${k.status}`}>{k.status}</span>
        {!k.enabled && (
          <>
            <br />
            <span class="status status-disabled">disabled</span>
          </>
        )}
        {k.remaining_uses !== null && (
          <>
            <br />
            <span class="hint">
              {k.remaining_uses.toLocaleString('en')} uses left
              {k.refill ? ` (refilled to ${k.refill.amount.toLocaleString('en')} ${k.refill.interval})` : ''}
            </span>
          </>
        )}
      </td>
      <td class="row-actions">
        <button type="button" class="link" onClick={() => actions.activity(k)}>
          Activity
        </button>
        {canWrite && active && (
          <>
            <button type="button" class="secondary" onClick={() => actions.edit(k)}>
              Edit
            </button>
            <button type="button" class="secondary" onClick={() => actions.toggle(k)}>
              {k.enabled ? 'Disable' : 'Enable'}
            </button>
            <button type="button" class="secondary" onClick={() => actions.rotate(k)}>
              Rotate
            </button>
            <button type="button" class="danger" onClick={() => actions.revoke(k)}>
              Revoke
            </button>
          </>
        )}
      </td>
    </tr>
  );
}
