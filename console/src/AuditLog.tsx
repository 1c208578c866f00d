import { useEffect, useState } from 'preact/hooks';
import { ApiError, type Api, type AuditEntry } from './api.js';
import { ErrorText } from './Dialog.js';
import { when } from './format.js';

/** The account's audit log, newest first; re-read whenever `version` changes (after each change made here). */
export function AuditLog(props: { api: Api; account: string; version: number }) {
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | undefined>();
  const read = async (cursor?: string) => {
    try {
      const page = await props.api.audit(props.account, cursor);
      setEntries((before) => (cursor ? [...before, ...page.data] : page.data));
      setNext(page.next_cursor);
      setError(undefined);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  useEffect(() => {
    void read();
  }, [props.api, props.account, props.version]);
  return (
    <section aria-labelledby="audit-title" class="panel">
      <h2 id="audit-title">Audit log</h2>
      <ErrorText messages={error} />
      <table>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">Action</th>
            <th scope="col">Key</th>
            <th scope="col">From</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((a) => (
            <tr key={a.id}>
              <td>{when(a.at)}</td>
              <td>{a.actor}</td>
              <td>{a.action}</td>
              <td>
                <code>{a.key_id ?? '—'}</code>
              </td>
              <td>{a.source_ip ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {next && (
        <button type="button" class="secondary" onClick={() => void read(next)}>
          Load more
        </button>
      )}
    </section>
  );
}
