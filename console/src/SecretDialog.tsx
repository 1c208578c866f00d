import { useState } from 'preact/hooks';
import { Dialog } from './Dialog.js';

/**
 * The secret, once: kept in this dialog's props only, gone when it closes (never stored, logged or put in the URL).
 * An API key by default; `label` and `noun` name another secret (a webhook endpoint's signing secret).
 */
export function SecretDialog(props: {
  secret: string;
  title: string;
  onClose: () => void;
  label?: string;
  noun?: string;
  advice?: string;
}) {
  const label = props.label ?? 'API key';
  const noun = props.noun ?? 'key';
  const [copied, setCopied] = useState<string>('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.secret);
      setCopied('Copied to the clipboard.');
    } catch {
      // Refused by the browser (no permission, no secure context): the person is told what to do instead.
      setCopied(`The browser did not allow copying: select the ${noun} and copy it by hand.`);
    }
  };
  return (
    <Dialog id="secret" title={props.title} onClose={props.onClose}>
      <p class="warning" role="note">
        <strong>Copy this {noun} now. It will not be shown again.</strong>{' '}
        {props.advice ?? 'Store it in your secret manager.'}
      </p>
      <label for="secret-value">{label}</label>
      <input
        id="secret-value"
        class="secret"
        readOnly
        value={props.secret}
        autoComplete="off"
        spellcheck={false}
        onFocus={(e) => e.currentTarget.select()}
      />
      <div class="actions">
        <button type="button" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" class="secondary" onClick={props.onClose}>
          Done
        </button>
      </div>
      <p aria-live="polite" class="hint">
        {copied}
      </p>
    </Dialog>
  );
}
