#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { WEBHOOK_EVENT_TYPES } from './domain/webhook.js';
import { AdminApi, CliError, EXIT, keysPath, webhooksPath } from './cli/admin-api.js';
import {
  activityLines,
  endpointLines,
  endpointTable,
  keyLines,
  keyTable,
  type Activity,
  type Endpoint,
  type Key,
  type KeyPage,
} from './cli/output.js';

const EXIT_CODES = `
Exit codes:
  0  done (authenticate: allowed)
  1  authenticate: denied; other commands: the API refused (not found, forbidden, invalid)
  2  usage error (unknown command or option, missing argument, no admin token)
  3  the service could not be reached, timed out or failed (5xx, UNAVAILABLE)`;

const ENVIRONMENT = `
Environment:
  OTESSE_ADMIN_URL    admin API (default http://localhost:8080); --url wins
  OTESSE_ADMIN_TOKEN  admin token (or --token-file; never on the command line)
  OTESSE_ACCOUNT      account id when --account is not given
  OTESSE_KEY          the key for authenticate (or --key-file)
  KEY_SERVICE_ADDR    gRPC address for authenticate (default localhost:50051)`;

interface Globals {
  url: string;
  tokenFile?: string;
  json?: boolean;
}

const list = (value: string, previous: string[] = []) => [
  ...previous,
  ...value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];
const seconds = (value: string) => {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('a whole number of seconds');
  return Number(value);
};

/** The admin token: OTESSE_ADMIN_TOKEN or --token-file, never an argument (it would sit in ps and shell history). */
function adminToken(g: Globals): string {
  if (g.tokenFile) {
    try {
      return readFileSync(g.tokenFile, 'utf8').trim();
    } catch (err) {
      // The errno code only (ENOENT, EACCES): nothing of the file's content can reach the message.
      throw new CliError(
        EXIT.USAGE,
        `cannot read --token-file ${g.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
  }
  const token = process.env.OTESSE_ADMIN_TOKEN;
  if (!token) throw new CliError(EXIT.USAGE, 'no admin token: set OTESSE_ADMIN_TOKEN or pass --token-file <path>');
  return token;
}

function print(g: Globals, value: unknown, human: () => string): void {
  process.stdout.write(`${g.json ? JSON.stringify(value, null, 2) : human()}\n`);
}

const account = () => new Option('-a, --account <id>', 'account id').env('OTESSE_ACCOUNT').makeOptionMandatory();

/** Each admin command: its arguments, then one REST call and its output. */
function adminCommands(program: Command): void {
  const api = () => {
    const g = program.opts<Globals>();
    return { g, api: new AdminApi(g.url, adminToken(g)) };
  };

  program
    .command('create')
    .description('create a key; prints its secret once')
    .addOption(account())
    .requiredOption('-l, --label <text>', 'label (1 to 100 characters)')
    .requiredOption('-s, --scope <scope>', 'scope to grant (repeat or comma separate)', list)
    .addOption(new Option('-e, --environment <env>', 'live or test').choices(['live', 'test']).default('live'))
    .option('--allowed-ip <ip-or-cidr>', 'allowed address or CIDR (repeat or comma separate; none: any)', list)
    .option('--expires-at <time>', 'RFC 3339 expiry')
    .action(
      async (o: {
        account: string;
        label: string;
        scope: string[];
        environment: string;
        allowedIp?: string[];
        expiresAt?: string;
      }) => {
        const { g, api: a } = api();
        const body = {
          label: o.label,
          scopes: o.scope,
          environment: o.environment,
          allowed_ips: o.allowedIp,
          expires_at: o.expiresAt,
        };
        const key = await a.call<Key>('POST', keysPath(o.account), body);
        print(
          g,
          key,
          () => `${keyLines(key)}\n\nsecret:          ${key.secret}\n(shown only now: store it in your secret manager)`,
        );
      },
    );

  program
    .command('list')
    .description("list an account's keys")
    .addOption(account())
    .addOption(new Option('-e, --environment <env>', 'only live or test').choices(['live', 'test']))
    .addOption(new Option('--status <status>', 'only this status').choices(['active', 'revoked', 'expired']))
    .option('--limit <n>', 'page size (1..100)')
    .option('--cursor <cursor>', 'next page (from next_cursor)')
    .action(async (o: { account: string; environment?: string; status?: string; limit?: string; cursor?: string }) => {
      const { g, api: a } = api();
      const query = new URLSearchParams(
        Object.entries({ environment: o.environment, status: o.status, limit: o.limit, cursor: o.cursor }).filter(
          (e): e is [string, string] => e[1] !== undefined,
        ),
      );
      const page = await a.call<KeyPage>(
        'GET',
        `${keysPath(o.account)}${query.size > 0 ? `?${query.toString()}` : ''}`,
      );
      print(g, page, () => `${keyTable(page.data)}${page.next_cursor ? `\n(more: --cursor ${page.next_cursor})` : ''}`);
    });

  program
    .command('get')
    .description('show one key')
    .argument('<keyId>', 'key id (key_...)')
    .addOption(account())
    .action(async (keyId: string, o: { account: string }) => {
      const { g, api: a } = api();
      const key = await a.call<Key>('GET', keysPath(o.account, keyId));
      print(g, key, () => keyLines(key));
    });

  program
    .command('revoke')
    .description('revoke a key (effective on every replica when it returns)')
    .argument('<keyId>', 'key id')
    .addOption(account())
    .option('-r, --reason <text>', 'why (kept in the audit log)')
    .action(async (keyId: string, o: { account: string; reason?: string }) => {
      const { g, api: a } = api();
      const key = await a.call<Key>(
        'POST',
        keysPath(o.account, keyId, '/revoke'),
        o.reason === undefined ? {} : { reason: o.reason },
      );
      print(g, key, () => `revoked ${key.id} at ${key.revoked_at}`);
    });

  program
    .command('rotate')
    .description('issue a new key with the same grant; the old one keeps working for a while')
    .argument('<keyId>', 'key id')
    .addOption(account())
    .option('--expire-previous-in <seconds>', 'how long the old key keeps working (default 86400)', seconds)
    .action(async (keyId: string, o: { account: string; expirePreviousIn?: number }) => {
      const { g, api: a } = api();
      const body = o.expirePreviousIn === undefined ? {} : { expire_previous_in: o.expirePreviousIn };
      const key = await a.call<Key>('POST', keysPath(o.account, keyId, '/rotate'), body);
      print(
        g,
        key,
        () =>
          `${keyLines(key)}\n\nsecret:          ${key.secret}\n(shown only now)\nprevious ${key.previous?.id} expires at ${key.previous?.expires_at}`,
      );
    });

  program
    .command('activity')
    .description("a key's usage, denials, addresses, alerts and admin events")
    .argument('<keyId>', 'key id')
    .addOption(account())
    .option('--from <time>', 'RFC 3339 start (default 30 days ago)')
    .option('--to <time>', 'RFC 3339 end')
    .action(async (keyId: string, o: { account: string; from?: string; to?: string }) => {
      const { g, api: a } = api();
      const query = new URLSearchParams(
        Object.entries({ from: o.from, to: o.to }).filter((e): e is [string, string] => e[1] !== undefined),
      );
      const activity = await a.call<Activity>(
        'GET',
        keysPath(o.account, keyId, `/activity${query.size > 0 ? `?${query.toString()}` : ''}`),
      );
      print(g, activity, () => activityLines(activity));
    });
}

/** The event types, for `webhooks create --help` (the API checks them). */
const WEBHOOK_EVENT_LIST = WEBHOOK_EVENT_TYPES.join(', ');

/** `webhooks list|create|delete|test`: an account's webhook endpoints (docs/webhooks.md). */
function webhookCommands(program: Command): void {
  const api = () => {
    const g = program.opts<Globals>();
    return { g, api: new AdminApi(g.url, adminToken(g)) };
  };
  const webhooks = program
    .command('webhooks')
    .description("manage an account's webhook endpoints: list, create, delete, test");

  webhooks
    .command('list')
    .description("list an account's webhook endpoints")
    .addOption(account())
    .action(async (o: { account: string }) => {
      const { g, api: a } = api();
      const list = await a.call<{ data: Endpoint[] }>('GET', webhooksPath(o.account));
      print(g, list, () => (list.data.length === 0 ? '(no webhook endpoints)' : endpointTable(list.data)));
    });

  webhooks
    .command('create')
    .description('create a webhook endpoint; prints its signing secret once')
    .argument('<url>', 'where events are POSTed (https:)')
    .addOption(account())
    .requiredOption('--events <types>', `event types (comma separate or repeat): ${WEBHOOK_EVENT_LIST}`, list)
    .option('-d, --description <text>', 'what the endpoint is for')
    .action(async (url: string, o: { account: string; events: string[]; description?: string }) => {
      const { g, api: a } = api();
      const body = { url, events: o.events, description: o.description };
      const e = await a.call<Endpoint>('POST', webhooksPath(o.account), body);
      print(
        g,
        e,
        () =>
          `${endpointLines(e)}\n\nsecret:          ${e.secret}\n(shown only now: give it to the receiver, which verifies every delivery with it)`,
      );
    });

  webhooks
    .command('delete')
    .description('delete a webhook endpoint (its pending deliveries are dropped)')
    .argument('<endpointId>', 'endpoint id (whe_...)')
    .addOption(account())
    .action(async (endpointId: string, o: { account: string }) => {
      const { g, api: a } = api();
      await a.call('DELETE', webhooksPath(o.account, endpointId));
      print(g, { id: endpointId, deleted: true }, () => `deleted ${endpointId}`);
    });

  webhooks
    .command('test')
    .description('send a webhook.test event to an endpoint (see its deliveries in the console or the API)')
    .argument('<endpointId>', 'endpoint id (whe_...)')
    .addOption(account())
    .action(async (endpointId: string, o: { account: string }) => {
      const { g, api: a } = api();
      const sent = await a.call<{ event_id: string }>('POST', webhooksPath(o.account, endpointId, '/test'));
      print(g, sent, () => `sent webhook.test ${sent.event_id} to ${endpointId}`);
    });
}

/** `authenticate`: the gRPC question every service asks, through @otesse/keys-client. */
function authenticateCommand(program: Command): void {
  program
    .command('authenticate')
    .description('ask the key service whether a key may do a scope from an address (gRPC)')
    .requiredOption('--ip <address>', "the client's address")
    .requiredOption('--scope <scope>', 'the scope needed')
    .option('--key-file <path>', 'read the key from a file (else OTESSE_KEY)')
    .addOption(new Option('--key <key>', 'the key (prefer OTESSE_KEY: arguments show in ps)').hideHelp())
    .addOption(
      new Option('--addr <host:port>', 'key service gRPC address').env('KEY_SERVICE_ADDR').default('localhost:50051'),
    )
    .option('--deadline-ms <ms>', 'deadline of the call', (v) => Number(v), 2000)
    .action(
      async (o: { ip: string; scope: string; key?: string; keyFile?: string; addr: string; deadlineMs: number }) => {
        const g = program.opts<Globals>();
        const key = o.key ?? (o.keyFile ? readFileSync(o.keyFile, 'utf8').trim() : process.env.OTESSE_KEY);
        if (key === undefined) throw new CliError(EXIT.USAGE, 'no key: set OTESSE_KEY or pass --key-file <path>');
        // Loaded here: the admin commands need no gRPC.
        const { KeyServiceClient, KeyServiceUnavailableError } = await import('@otesse/keys-client');
        // One question: nothing to decide again later, so no Watch stream.
        const client = new KeyServiceClient({ address: o.addr, deadlineMs: o.deadlineMs, localDecisions: false });
        try {
          const r = await client.authenticate({ key, ip: o.ip, scope: o.scope });
          const id = r.identity;
          const json = {
            allowed: r.allowed,
            reason: r.allowed ? 'DENY_REASON_UNSPECIFIED' : r.reason,
            key_id: id?.keyId ?? '',
            account_id: id?.accountId ?? '',
            environment: id?.environment ?? '',
            scopes: id?.scopes ?? [],
          };
          print(g, json, () =>
            r.allowed ? `allowed: ${id?.keyId} (${id?.accountId}, ${id?.environment})` : `denied: ${json.reason}`,
          );
          process.exitCode = r.allowed ? EXIT.OK : EXIT.DENIED;
        } catch (err) {
          throw new CliError(
            err instanceof KeyServiceUnavailableError ? EXIT.UNAVAILABLE : EXIT.USAGE,
            (err as Error).message,
          );
        } finally {
          await client.close();
        }
      },
    );
}

/** The program: global options, the seven key commands and `webhooks`, help with exit codes everywhere. */
function buildProgram(): Command {
  const program = new Command('otesse-keys')
    .description('Manage Otesse API keys over the admin API, and check one over gRPC.')
    .addOption(new Option('--url <url>', 'admin API base URL').env('OTESSE_ADMIN_URL').default('http://localhost:8080'))
    .option('--token-file <path>', 'file holding the admin token (else OTESSE_ADMIN_TOKEN)')
    .option('--json', 'print JSON instead of text')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText('after', `${ENVIRONMENT}\n${EXIT_CODES}`);
  adminCommands(program);
  webhookCommands(program);
  authenticateCommand(program);
  const all = (c: Command): Command[] => c.commands.flatMap((sub) => [sub, ...all(sub)]);
  for (const command of all(program)) command.exitOverride().addHelpText('after', EXIT_CODES);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    if (argv.length <= 2) {
      program.outputHelp();
      return EXIT.USAGE;
    }
    await program.parseAsync(argv);
    return Number(process.exitCode ?? EXIT.OK);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    if (err instanceof CliError) {
      process.stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.UNAVAILABLE;
  }
}

// main answers every error with an exit code of its own: it never rejects.
void main(process.argv).then((code) => process.exit(code));
