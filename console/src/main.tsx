import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Api, ApiError, type Me } from './api.js';
import { App } from './App.js';
import { ErrorText } from './Dialog.js';
import { fromFragment, hostOrigins, listenToOpener, type Handoff } from './handoff.js';

interface Session {
  api: Api;
  me: Me;
  account: string;
  scopes: string[];
}

/** Check a handed-over token against the API (GET /v1/me) and pick the account to show. */
async function signIn(h: Handoff): Promise<Session> {
  const api = new Api(h.token);
  const [me, scopes] = await Promise.all([api.me(), api.scopes()]);
  const account = h.account?.trim() || (me.accounts?.length === 1 ? me.accounts[0] : undefined);
  if (!account)
    throw new ApiError(400, 'Name the account to manage.', [
      { path: 'account', message: 'Name the account to manage.' },
    ]);
  if (me.accounts && !me.accounts.includes(account))
    throw new ApiError(403, `This sign-in may not manage account ${account}.`, [
      { path: 'account', message: `This sign-in may not manage account ${account}.` },
    ]);
  return { api, me, account, scopes: scopes.data };
}

/** Development sign-in: paste an admin token (data/admin-token) or a JWT, and the account. */
function SignInForm(props: { error?: ApiError | undefined; onSubmit: (h: Handoff) => void }) {
  const [token, setToken] = useState('');
  const [account, setAccount] = useState('');
  const about = (f: string) => props.error?.about(f) ?? [];
  return (
    <main class="signin">
      <h1>API Keys</h1>
      <p>
        This page is normally opened from the Otesse dashboard, which signs you in. For development, paste an admin
        token.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          props.onSubmit({ token: token.trim(), account });
        }}
      >
        <label for="signin-token">Admin token</label>
        <input
          id="signin-token"
          type="password"
          autoComplete="off"
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          aria-describedby="err-token"
          aria-invalid={props.error && about('account').length === 0 ? true : undefined}
        />
        <ErrorText
          id="err-token"
          messages={props.error && about('account').length === 0 ? props.error.message : undefined}
        />
        <label for="signin-account">Account</label>
        <input
          id="signin-account"
          value={account}
          onInput={(e) => setAccount(e.currentTarget.value)}
          placeholder="acct_…"
          aria-describedby="err-account"
          aria-invalid={about('account').length > 0 ? true : undefined}
        />
        <ErrorText id="err-account" messages={about('account')} />
        <div class="actions">
          <button type="submit">Sign in</button>
        </div>
      </form>
    </main>
  );
}

function Root() {
  const [session, setSession] = useState<Session | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const attempt = (h: Handoff) => {
    signIn(h).then(
      (s) => {
        setSession(s);
        setError(undefined);
      },
      (err: unknown) => setError(err instanceof ApiError ? err : new ApiError(0, String(err))),
    );
  };
  useEffect(() => {
    const hosts = hostOrigins();
    const handed = fromFragment(hosts);
    if (handed) attempt(handed);
    listenToOpener(hosts, attempt);
  }, []);
  if (!session) return <SignInForm error={error} onSubmit={attempt} />;
  const signOut = (why?: ApiError) => {
    setSession(undefined);
    setError(why && new ApiError(why.status, `Signed out: ${why.message}. Sign in again.`));
  };
  return <App key={session.account} {...session} onSignOut={signOut} />;
}

const root = document.getElementById('root');
if (root) render(<Root />, root);
