import { useState } from 'preact/hooks';
import { ApiError, type Key } from './api.js';
import { Dialog, ErrorText } from './Dialog.js';
import { SCOPE_DESCRIPTIONS } from './scopes.js';

export interface KeyFormValues {
  label: string;
  scopes: string[];
  environment?: 'live' | 'test';
  allowed_ips: string[];
  expires_at: string | null;
}

/** Generate New Key (no `existing`) or Edit: label, scopes, environment (create only), allowed IPs, expiry. */
export function KeyForm(props: {
  scopes: string[];
  existing?: Key;
  onSubmit: (v: KeyFormValues) => Promise<void>;
  onClose: () => void;
}) {
  const k = props.existing;
  const [label, setLabel] = useState(k?.label ?? '');
  const [scopes, setScopes] = useState<string[]>(k?.scopes ?? []);
  const [environment, setEnvironment] = useState<'live' | 'test'>(k?.environment ?? 'live');
  const [ips, setIps] = useState((k?.allowed_ips ?? []).join('\n'));
  const [expires, setExpires] = useState(k?.expires_at ? toLocalInput(k.expires_at) : '');
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const about = (f: string) => error?.about(f) ?? [];
  const invalid = (f: string) => (about(f).length > 0 ? { 'aria-invalid': true, 'aria-describedby': `err-${f}` } : {});

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await props.onSubmit({
        label,
        scopes,
        environment: k ? undefined : environment,
        allowed_ips: ips.split(/[\s,]+/).filter(Boolean),
        expires_at: expires ? new Date(expires).toISOString() : null,
      });
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
    } finally {
      setBusy(false);
    }
  };
  const toggle = (s: string) => setScopes(scopes.includes(s) ? scopes.filter((x) => x !== s) : [...scopes, s]);
  const fieldPaths = ['label', 'scopes', 'environment', 'allowed_ips', 'expires_at'];
  const general =
    error && error.errors.every((x) => !fieldPaths.some((f) => x.path === f || x.path.startsWith(`${f}/`)))
      ? error.message
      : undefined;

  return (
    <Dialog id="key-form" title={k ? `Edit ${k.label}` : 'Generate New Key'} onClose={props.onClose}>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <label for="f-label">Label</label>
        <input
          id="f-label"
          name="label"
          value={label}
          onInput={(e) => setLabel(e.currentTarget.value)}
          required
          maxLength={100}
          {...invalid('label')}
        />
        <ErrorText id="err-label" messages={about('label')} />

        <fieldset {...invalid('scopes')}>
          <legend>Scopes</legend>
          {props.scopes.map((s) => (
            <div class="check" key={s}>
              <input type="checkbox" id={`scope-${s}`} checked={scopes.includes(s)} onChange={() => toggle(s)} />
              <label for={`scope-${s}`}>
                <code>{s}</code> <span class="hint">{SCOPE_DESCRIPTIONS[s] ?? ''}</span>
              </label>
            </div>
          ))}
        </fieldset>
        <ErrorText id="err-scopes" messages={about('scopes')} />

        {!k && (
          <fieldset {...invalid('environment')}>
            <legend>Environment</legend>
            {(['live', 'test'] as const).map((env) => (
              <div class="check" key={env}>
                <input
                  type="radio"
                  name="environment"
                  id={`env-${env}`}
                  checked={environment === env}
                  onChange={() => setEnvironment(env)}
                />
                <label for={`env-${env}`}>{env === 'live' ? 'Live' : 'Test'}</label>
              </div>
            ))}
          </fieldset>
        )}
        <ErrorText id="err-environment" messages={about('environment')} />

        <label for="f-ips">
          Allowed IPs <span class="hint">(optional; addresses or CIDRs, one per line; empty: any)</span>
        </label>
        <textarea
          id="f-ips"
          rows={3}
          value={ips}
          onInput={(e) => setIps(e.currentTarget.value)}
          {...invalid('allowed_ips')}
        />
        <ErrorText id="err-allowed_ips" messages={about('allowed_ips')} />

        <label for="f-expires">
          Expires <span class="hint">(optional)</span>
        </label>
        <input
          id="f-expires"
          type="datetime-local"
          value={expires}
          onInput={(e) => setExpires(e.currentTarget.value)}
          {...invalid('expires_at')}
        />
        <ErrorText id="err-expires_at" messages={about('expires_at')} />

        <ErrorText messages={general} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            {k ? 'Save' : 'Create'}
          </button>
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function toLocalInput(iso: string): string {
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}
