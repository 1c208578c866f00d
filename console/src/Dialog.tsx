import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

/** A modal <dialog>: the browser traps focus, Escape closes it, focus returns to what opened it. */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; id?: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    const opener = document.activeElement as HTMLElement | null;
    dialog?.showModal();
    return () => {
      dialog?.close();
      opener?.focus();
    };
  }, []);
  const titleId = `${props.id ?? 'dialog'}-title`;
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <h2 id={titleId}>{props.title}</h2>
      {props.children}
    </dialog>
  );
}

/** The API's answer in words, announced to screen readers. */
export function ErrorText(props: { id?: string; messages: string[] | string | undefined }) {
  const list = typeof props.messages === 'string' ? [props.messages] : (props.messages ?? []);
  if (list.length === 0) return null;
  return (
    <p class="error" id={props.id} role="alert">
      {list.join(' ')}
    </p>
  );
}
