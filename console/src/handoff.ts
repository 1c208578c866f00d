/**
 * How the console gets its bearer token from the dashboard that opens it (docs/console-embedding.md):
 * - a postMessage from the window that opened the console: the console posts `{type: 'otesse-console:ready'}`
 *   to `window.opener`, which answers `{type: 'otesse-console:token', token, account?}` (again to refresh the token);
 * - in development only, a URL fragment `#token=<jwt>&account=<id>`.
 * The server says in a meta tag who may hand a token over. With CONSOLE_HOST_ORIGINS set, only a message from the
 * opener whose origin is listed is taken, `ready` is posted to the listed origins only, and a fragment is ignored:
 * otherwise any site could open the console, or link to it, with a token of its own account and have a person
 * make keys there. Unset (`*`): any opener, and the fragment. The token is kept in memory only.
 */
export interface Handoff {
  token: string;
  account?: string | undefined;
}

/** `any`: development (any opener, the fragment); a list: those origins only; `none`: the page was not served with the tag. */
export type HostOrigins = 'any' | 'none' | readonly string[];

/** Read once from the page the server sent; a page without the tag takes no handoff at all rather than any. */
export function hostOrigins(): HostOrigins {
  const content = document.querySelector('meta[name="otesse-console-host-origins"]')?.getAttribute('content')?.trim();
  if (content === undefined || content === '') return 'none';
  return content === '*' ? 'any' : content.split(/\s+/);
}

/** The `#token=` fragment, removed at once from the address bar and the history entry whether it is taken or not. */
export function fromFragment(hosts: HostOrigins): Handoff | undefined {
  if (!location.hash.includes('token=')) return undefined;
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname + location.search);
  const token = params.get('token');
  if (hosts !== 'any') return undefined; // a link can come from anyone: only a listed window may sign in
  return token ? { token, account: params.get('account') ?? undefined } : undefined;
}

export function listenToOpener(hosts: HostOrigins, onToken: (h: Handoff) => void): void {
  const opener = window.opener as Window | null;
  if (!opener || hosts === 'none') return;
  const trusted = (origin: string) => hosts === 'any' || hosts.includes(origin);
  window.addEventListener('message', (event: MessageEvent) => {
    const data = event.data as { type?: unknown; token?: unknown; account?: unknown } | null;
    if (event.source !== opener || !trusted(event.origin)) return;
    if (data?.type !== 'otesse-console:token' || typeof data.token !== 'string') return;
    onToken({ token: data.token, account: typeof data.account === 'string' ? data.account : undefined });
  });
  // A stranger that opened the console is not even told it loaded: the browser drops a message to another origin.
  for (const origin of hosts === 'any' ? ['*'] : hosts) opener.postMessage({ type: 'otesse-console:ready' }, origin);
}
