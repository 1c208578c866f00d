import { useState } from 'preact/hooks';
import { ApiError, type Key } from './api.js';
import { Dialog, ErrorText } from './Dialog.js';

/** Runs an API call from a dialog: shows its refusal in words under the form, keeps the dialog open. */
export function useAction() {
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const run = async (e: Event, action: () => Promise<void>) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await action();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, run };
}

/** Revoke: confirmation with an optional reason. */
export function RevokeDialog(props: { keyRow: Key; onRevoke: (reason: string) => Promise<void>; onClose: () => void }) {
  const [reason, setReason] = useState('');
  const { error, busy, run } = useAction();
  return (
    <Dialog id="revoke" title={`Revoke ${props.keyRow.label}?`} onClose={props.onClose}>
      <form onSubmit={(e) => void run(e, () => props.onRevoke(reason.trim()))}>
        <p>
          Every call with <code>{props.keyRow.redacted}</code> is refused as soon as this returns. This cannot be
          undone.
        </p>
        <label for="revoke-reason">
          Reason <span class="hint">(optional)</span>
        </label>
        <input
          id="revoke-reason"
          value={reason}
          maxLength={500}
          onInput={(e) => setReason(e.currentTarget.value)}
          aria-invalid={(error?.about('reason').length ?? 0) > 0}
          aria-describedby="err-reason"
        />
        <ErrorText id="err-reason" messages={error?.message} />
        <div class="actions">
          <button type="submit" class="danger" disabled={busy}>
            Revoke key
          </button>
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

const GRACE = [
  [0, 'Immediately'],
  [3600, '1 hour'],
  [86_400, '24 hours'],
  [259_200, '3 days'],
  [604_800, '7 days'],
] as const;

/** Rotate: how long the old key keeps working. */
export function RotateDialog(props: { keyRow: Key; onRotate: (grace: number) => Promise<void>; onClose: () => void }) {
  const [grace, setGrace] = useState(86_400);
  const { error, busy, run } = useAction();
  return (
    <Dialog id="rotate" title={`Rotate ${props.keyRow.label}`} onClose={props.onClose}>
      <form onSubmit={(e) => void run(e, () => props.onRotate(grace))}>
        <p>
          A new key with the same scopes and allowed IPs replaces <code>{props.keyRow.redacted}</code>.
        </p>
        <label for="rotate-grace">Keep the old key working for</label>
        <select
          id="rotate-grace"
          value={String(grace)}
          onChange={(e) => setGrace(Number(e.currentTarget.value))}
          aria-describedby="err-grace"
        >
          {GRACE.map(([s, text]) => (
            <option key={s} value={String(s)}>
              {text}
            </option>
          ))}
        </select>
        <ErrorText id="err-grace" messages={error?.message} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            Rotate key
          </button>
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** Revoke all keys of one environment: the admin types the account id to confirm. */
export function RevokeAllDialog(props: {
  account: string;
  onRevokeAll: (env: string, reason: string) => Promise<void>;
  onClose: () => void;
}) {
  const [env, setEnv] = useState<'live' | 'test'>('live');
  const [typed, setTyped] = useState('');
  const [reason, setReason] = useState('');
  const { error, busy, run } = useAction();
  const confirmed = typed.trim() === props.account;
  return (
    <Dialog id="revoke-all" title="Revoke all keys" onClose={props.onClose}>
      <form onSubmit={(e) => void run(e, () => props.onRevokeAll(env, reason.trim()))}>
        <p>Emergency: every active key of this environment stops working everywhere at once. This cannot be undone.</p>
        <label for="ra-env">Environment</label>
        <select id="ra-env" value={env} onChange={(e) => setEnv(e.currentTarget.value as 'live' | 'test')}>
          <option value="live">Live</option>
          <option value="test">Test</option>
        </select>
        <label for="ra-reason">
          Reason <span class="hint">(optional)</span>
        </label>
        <input id="ra-reason" value={reason} maxLength={500} onInput={(e) => setReason(e.currentTarget.value)} />
        <label for="ra-confirm">
          Type the account id <code>{props.account}</code> to confirm
        </label>
        <input
          id="ra-confirm"
          value={typed}
          autoComplete="off"
          onInput={(e) => setTyped(e.currentTarget.value)}
          aria-describedby="err-ra"
        />
        <ErrorText id="err-ra" messages={error?.message} />
        <div class="actions">
          <button type="submit" class="danger" disabled={!confirmed || busy}>
            Revoke all {env} keys
          </button>
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}
