/**
 * How the console gets its bearer token from the page that embeds it (see the README, "Embedding"):
 * - a URL fragment `#token=<jwt>&account=<id>`, read once and removed at once from the address bar and history;
 * - a postMessage from the window that opened the console: the console posts `{type: 'otesse-console:ready'}`
 *   to `window.opener`, which answers `{type: 'otesse-console:token', token, account?}` (again to refresh the token).
 * Only messages from that opener window are taken. The token is kept in memory only.
 */
export interface Handoff { token: string; account?: string | undefined }

export function fromFragment(): Handoff | undefined {
  if (!location.hash.includes('token=')) return undefined;
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname + location.search);
  const token = params.get('token');
  return token ? { token, account: params.get('account') ?? undefined } : undefined;
}

export function listenToOpener(onToken: (h: Handoff) => void): void {
  const opener = window.opener as Window | null;
  if (!opener) return;
  window.addEventListener('message', (event: MessageEvent) => {
    const data = event.data as { type?: unknown; token?: unknown; account?: unknown } | null;
    if (event.source !== opener || data?.type !== 'otesse-console:token' || typeof data.token !== 'string') return;
    onToken({ token: data.token, account: typeof data.account === 'string' ? data.account : undefined });
  });
  opener.postMessage({ type: 'otesse-console:ready' }, '*');
}
