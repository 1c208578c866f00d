// The bad-input catalogue: every hostile or careless input the suite sends, with the answer it
// must get. docs/bad-input.md lists the same cases (a test keeps the two in step).
import { generateKey } from '../../src/domain/key-format.js';

/** Placeholders filled in by the suite: a key of the account, a key of another account. */
export const KEY = '{key}';
export const OTHER_KEY = '{otherKey}';
export const ACCOUNT = 'acct_bad';

export interface RestCase {
  name: string;
  method: string;
  path: string;
  /** A JSON value, or `raw` text sent as is. */
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  /** `null`: no token; `'limited'`: a token for another account only; `'wrong'`: an unknown token. */
  token?: null | 'limited' | 'wrong';
  status: number;
  /** The `errors[].path` the problem must name. */
  paths?: string[];
}

const keys = `/v1/accounts/${ACCOUNT}/keys`;
const key = `${keys}/${KEY}`;
const VALID = { label: 'ok', scopes: ['bookings:read'], environment: 'live' };
const create = (name: string, body: unknown, status: number, paths?: string[]): RestCase => ({
  name,
  method: 'POST',
  path: keys,
  body,
  status,
  ...(paths ? { paths } : {}),
});
const withField = (field: string, value: unknown) => ({ ...VALID, [field]: value });
const hooks = `/v1/accounts/${ACCOUNT}/webhook-endpoints`;
const hook = (name: string, body: unknown, paths: string[]): RestCase => ({
  name,
  method: 'POST',
  path: hooks,
  body,
  status: 400,
  paths,
});
const cursorOf = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
const aFullKey = generateKey('live').key;

export const REST_CASES: RestCase[] = [
  // Bodies that are not what the route reads.
  {
    name: 'malformed JSON',
    method: 'POST',
    path: keys,
    raw: '{"label":',
    headers: { 'content-type': 'application/json' },
    status: 400,
  },
  {
    name: 'JSON array instead of an object',
    method: 'POST',
    path: keys,
    raw: '[]',
    headers: { 'content-type': 'application/json' },
    status: 400,
  },
  {
    name: 'JSON null body',
    method: 'POST',
    path: keys,
    raw: 'null',
    headers: { 'content-type': 'application/json' },
    status: 400,
  },
  {
    name: 'text/plain body',
    method: 'POST',
    path: keys,
    raw: 'label=ok',
    headers: { 'content-type': 'text/plain' },
    status: 415,
  },
  {
    name: 'application/xml body',
    method: 'POST',
    path: keys,
    raw: '<key/>',
    headers: { 'content-type': 'application/xml' },
    status: 415,
  },
  {
    name: 'form-encoded body',
    method: 'POST',
    path: keys,
    raw: 'label=ok',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    status: 415,
  },
  {
    name: 'body over the size limit',
    method: 'POST',
    path: keys,
    raw: JSON.stringify(withField('label', 'x'.repeat(70_000))),
    headers: { 'content-type': 'application/json' },
    status: 413,
  },
  create('unknown field', { ...VALID, admin: true }, 400, ['admin']),
  create('missing environment', { label: 'ok', scopes: ['bookings:read'] }, 400, ['environment']),
  create('environment not live or test', withField('environment', 'prod'), 400, ['environment']),
  // Labels.
  create('label of the wrong type', withField('label', 5), 400, ['label']),
  create('empty label', withField('label', ''), 400, ['label']),
  create('label of only spaces', withField('label', '    '), 400, ['label']),
  create('label over 100 characters', withField('label', 'x'.repeat(101)), 400, ['label']),
  create('NUL in label', withField('label', 'a\u0000b'), 400, ['label']),
  create('escape sequence in label', withField('label', '\u001b[31mred'), 400, ['label']),
  create('DEL in label', withField('label', 'a\u007fb'), 400, ['label']),
  create('C1 control in label', withField('label', 'a\u0085b'), 400, ['label']),
  create('bidi override in label', withField('label', 'abc\u202Egpj.exe'), 400, ['label']),
  create('lone surrogate in label', withField('label', 'a\ud800b'), 400, ['label']),
  // Scopes.
  create('scopes of the wrong type', withField('scopes', 'bookings:read'), 400, ['scopes']),
  create('no scope', withField('scopes', []), 400, ['scopes']),
  create('scope not in the catalog', withField('scopes', ['admin:all']), 400, ['scopes/0']),
  create('duplicate scope', withField('scopes', ['bookings:read', 'bookings:read']), 400, ['scopes']),
  create(
    'huge scopes array',
    withField(
      'scopes',
      Array.from({ length: 3000 }, () => 'bookings:read'),
    ),
    400,
    ['scopes'],
  ),
  create('scope with a NUL', withField('scopes', ['bookings:read\u0000']), 400, ['scopes/0']),
  // Addresses.
  create('IPv6 zone id', withField('allowed_ips', ['fe80::1%eth-0']), 400, ['allowed_ips/0']),
  create('IPv4 with leading zeros', withField('allowed_ips', ['010.0.0.1']), 400, ['allowed_ips/0']),
  create('CIDR with host bits', withField('allowed_ips', ['10.0.0.1/8']), 400, ['allowed_ips/0']),
  create('IPv4 prefix out of range', withField('allowed_ips', ['10.0.0.0/33']), 400, ['allowed_ips/0']),
  create('IPv6 prefix out of range', withField('allowed_ips', ['2001:db8::/129']), 400, ['allowed_ips/0']),
  create('prefix with a sign', withField('allowed_ips', ['10.0.0.0/+8']), 400, ['allowed_ips/0']),
  create('duplicate address after normalisation', withField('allowed_ips', ['192.0.2.1', '::ffff:192.0.2.1']), 400, [
    'allowed_ips/1',
  ]),
  create('not an address', withField('allowed_ips', ['localhost']), 400, ['allowed_ips/0']),
  create(
    '101 addresses',
    withField(
      'allowed_ips',
      Array.from({ length: 101 }, (_, i) => `10.0.${i >> 8}.${i & 255}`),
    ),
    400,
    ['allowed_ips'],
  ),
  // Dates.
  create('expires_at in the past', withField('expires_at', '2001-01-01T00:00:00Z'), 400, ['expires_at']),
  create('expires_at in year 9999', withField('expires_at', '9999-12-31T00:00:00Z'), 400, ['expires_at']),
  create('expires_at on a leap second', withField('expires_at', '2030-06-30T23:59:60Z'), 400, ['expires_at']),
  create('expires_at not a date', withField('expires_at', 'tomorrow'), 400, ['expires_at']),
  create('expires_at a number', withField('expires_at', 1_900_000_000), 400, ['expires_at']),
  // Rate limits, quota, enabled and metadata: errors name the field, never echo metadata.
  create(
    'six rate limits',
    withField(
      'rate_limits',
      Array.from({ length: 6 }, (_, i) => ({ name: `l${i}`, limit: 1, window_seconds: 1 })),
    ),
    400,
    ['rate_limits'],
  ),
  create(
    'duplicate rate limit names',
    withField('rate_limits', [
      { name: 'a', limit: 1, window_seconds: 1 },
      { name: 'a', limit: 2, window_seconds: 60 },
    ]),
    400,
    ['rate_limits/1/name'],
  ),
  create('rate limit window 0', withField('rate_limits', [{ name: 'a', limit: 1, window_seconds: 0 }]), 400, [
    'rate_limits/0/window_seconds',
  ]),
  create(
    'rate limit window over a day',
    withField('rate_limits', [{ name: 'a', limit: 1, window_seconds: 86_401 }]),
    400,
    ['rate_limits/0/window_seconds'],
  ),
  create('rate limit of 0 calls', withField('rate_limits', [{ name: 'a', limit: 0, window_seconds: 1 }]), 400, [
    'rate_limits/0/limit',
  ]),
  create(
    'rate limit name with a space',
    withField('rate_limits', [{ name: 'per second', limit: 1, window_seconds: 1 }]),
    400,
    ['rate_limits/0/name'],
  ),
  create('remaining_uses below 0', withField('remaining_uses', -1), 400, ['remaining_uses']),
  create('remaining_uses not an integer', withField('remaining_uses', 1.5), 400, ['remaining_uses']),
  create('remaining_uses as a string', withField('remaining_uses', '100'), 400, ['remaining_uses']),
  create('refill without a quota', withField('refill', { amount: 10, interval: 'daily' }), 400, ['refill']),
  create('refill interval weekly', { ...VALID, remaining_uses: 5, refill: { amount: 5, interval: 'weekly' } }, 400, [
    'refill/interval',
  ]),
  create('enabled as a string', withField('enabled', 'yes'), 400, ['enabled']),
  create('metadata an array', withField('metadata', [{ plan: 'pro' }]), 400, ['metadata']),
  create('metadata over 4 KB', withField('metadata', { note: `${aFullKey} ${'x'.repeat(4096)}` }), 400, ['metadata']),
  create('metadata 6 levels deep', withField('metadata', { a: { b: { c: { d: { e: { f: 1 } } } } } }), 400, [
    'metadata',
  ]),
  create('metadata key over 100 characters', withField('metadata', { [`${aFullKey}${'k'.repeat(60)}`]: 1 }), 400, [
    'metadata',
  ]),
  create('metadata with a NUL', withField('metadata', { plan: 'pro\u0000' }), 400, ['metadata']),
  // Path parameters: validated before authorizing, never echoed.
  { name: 'a full key as the account id', method: 'GET', path: `/v1/accounts/${aFullKey}/keys`, status: 400 },
  {
    name: 'a full key as the account id, limited token',
    method: 'GET',
    path: `/v1/accounts/${aFullKey}/keys`,
    token: 'limited',
    status: 400,
  },
  { name: 'account id with an encoded NUL', method: 'GET', path: '/v1/accounts/acct%00x/keys', status: 400 },
  { name: 'account id over 64 characters', method: 'GET', path: `/v1/accounts/${'a'.repeat(65)}/keys`, status: 400 },
  { name: 'malformed key id', method: 'GET', path: `${keys}/key_123`, status: 400 },
  { name: 'a key id of another account', method: 'GET', path: `${keys}/${OTHER_KEY}`, status: 404 },
  {
    name: 'revoke a key of another account',
    method: 'POST',
    path: `${keys}/${OTHER_KEY}/revoke`,
    body: {},
    status: 404,
  },
  // PATCH.
  { name: 'PATCH with an empty body', method: 'PATCH', path: key, body: {}, status: 400 },
  { name: 'PATCH NUL in label', method: 'PATCH', path: key, body: { label: 'x\u0000' }, status: 400, paths: ['label'] },
  {
    name: 'PATCH unknown scope',
    method: 'PATCH',
    path: key,
    body: { scopes: ['bookings:delete'] },
    status: 400,
    paths: ['scopes/0'],
  },
  {
    name: 'PATCH unknown field',
    method: 'PATCH',
    path: key,
    body: { status: 'active' },
    status: 400,
    paths: ['status'],
  },
  {
    name: 'PATCH expires_at on a leap second',
    method: 'PATCH',
    path: key,
    body: { expires_at: '2031-12-31T23:59:60Z' },
    status: 400,
    paths: ['expires_at'],
  },
  {
    name: 'PATCH enabled as a string',
    method: 'PATCH',
    path: key,
    body: { enabled: 'yes' },
    status: 400,
    paths: ['enabled'],
  },
  {
    name: 'PATCH refill on a key without a quota',
    method: 'PATCH',
    path: key,
    body: { refill: { amount: 10, interval: 'monthly' } },
    status: 400,
    paths: ['refill'],
  },
  {
    name: 'PATCH remaining_uses null with a refill',
    method: 'PATCH',
    path: key,
    body: { remaining_uses: null, refill: { amount: 1, interval: 'daily' } },
    status: 400,
    paths: ['refill'],
  },
  {
    name: 'PATCH remaining_uses below 0',
    method: 'PATCH',
    path: key,
    body: { remaining_uses: -1 },
    status: 400,
    paths: ['remaining_uses'],
  },
  {
    name: 'PATCH duplicate rate limit names',
    method: 'PATCH',
    path: key,
    body: {
      rate_limits: [
        { name: 'a', limit: 1, window_seconds: 1 },
        { name: 'a', limit: 1, window_seconds: 1 },
      ],
    },
    status: 400,
    paths: ['rate_limits/1/name'],
  },
  {
    name: 'PATCH metadata a number',
    method: 'PATCH',
    path: key,
    body: { metadata: 42 },
    status: 400,
    paths: ['metadata'],
  },
  {
    name: 'PATCH metadata with a lone surrogate',
    method: 'PATCH',
    path: key,
    body: { metadata: { plan: 'pro\ud800' } },
    status: 400,
    paths: ['metadata'],
  },
  // Revoke, revoke-all, rotate.
  {
    name: 'revoke reason with a NUL',
    method: 'POST',
    path: `${key}/revoke`,
    body: { reason: 'leaked\u0000' },
    status: 400,
    paths: ['reason'],
  },
  {
    name: 'revoke reason over 500 characters',
    method: 'POST',
    path: `${key}/revoke`,
    body: { reason: 'x'.repeat(501) },
    status: 400,
    paths: ['reason'],
  },
  {
    name: 'revoke reason of the wrong type',
    method: 'POST',
    path: `${key}/revoke`,
    body: { reason: 5 },
    status: 400,
    paths: ['reason'],
  },
  {
    name: 'revoke-all reason with an escape sequence',
    method: 'POST',
    path: `${keys}/revoke-all`,
    body: { reason: '\u001b]0;pwned\u0007' },
    status: 400,
    paths: ['reason'],
  },
  {
    name: 'revoke-all environment not live or test',
    method: 'POST',
    path: `${keys}/revoke-all`,
    body: { environment: 'all' },
    status: 400,
    paths: ['environment'],
  },
  {
    name: 'rotate grace below 0',
    method: 'POST',
    path: `${key}/rotate`,
    body: { expire_previous_in: -1 },
    status: 400,
    paths: ['expire_previous_in'],
  },
  {
    name: 'rotate grace over 7 days',
    method: 'POST',
    path: `${key}/rotate`,
    body: { expire_previous_in: 604_801 },
    status: 400,
    paths: ['expire_previous_in'],
  },
  {
    name: 'rotate grace as a string',
    method: 'POST',
    path: `${key}/rotate`,
    body: { expire_previous_in: '60' },
    status: 400,
    paths: ['expire_previous_in'],
  },
  // Lists and cursors.
  { name: 'limit 0', method: 'GET', path: `${keys}?limit=0`, status: 400, paths: ['limit'] },
  { name: 'limit 101', method: 'GET', path: `${keys}?limit=101`, status: 400, paths: ['limit'] },
  { name: 'limit not a number', method: 'GET', path: `${keys}?limit=abc`, status: 400, paths: ['limit'] },
  { name: 'status filter not a status', method: 'GET', path: `${keys}?status=deleted`, status: 400, paths: ['status'] },
  { name: 'unknown query parameter', method: 'GET', path: `${keys}?sort=desc`, status: 400 },
  { name: 'garbage cursor', method: 'GET', path: `${keys}?cursor=%%%`, status: 400 },
  {
    name: 'forged cursor out of range',
    method: 'GET',
    path: `${keys}?cursor=${cursorOf({ k: 'keys', a: ACCOUNT, c: '-100000-01-01T00:00:00Z', i: 'key_AAAAAAAAAAAA' })}`,
    status: 400,
    paths: ['cursor'],
  },
  {
    name: 'cursor of another account',
    method: 'GET',
    path: `${keys}?cursor=${cursorOf({ k: 'keys', a: 'acct_other', c: '2030-01-01T00:00:00Z', i: 'key_AAAAAAAAAAAA' })}`,
    status: 400,
    paths: ['cursor'],
  },
  {
    name: 'audit-log cursor on the key list',
    method: 'GET',
    path: `${keys}?cursor=${cursorOf({ k: 'audit', a: ACCOUNT, b: 5 })}`,
    status: 400,
    paths: ['cursor'],
  },
  {
    name: 'key-list cursor on the audit log',
    method: 'GET',
    path: `/v1/accounts/${ACCOUNT}/audit-log?cursor=${cursorOf({ k: 'keys', a: ACCOUNT, c: '2030-01-01T00:00:00Z', i: 'key_AAAAAAAAAAAA' })}`,
    status: 400,
    paths: ['cursor'],
  },
  // Activity windows.
  {
    name: 'activity to on a leap second',
    method: 'GET',
    path: `${key}/activity?to=2030-06-30T23:59:60Z`,
    status: 400,
    paths: ['to'],
  },
  {
    name: 'activity from after to',
    method: 'GET',
    path: `${key}/activity?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z`,
    status: 400,
    paths: ['from'],
  },
  {
    name: 'activity from not a date',
    method: 'GET',
    path: `${key}/activity?from=yesterday`,
    status: 400,
    paths: ['from'],
  },
  {
    name: 'activity window over 400 days',
    method: 'GET',
    path: `${key}/activity?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z`,
    status: 400,
    paths: ['from'],
  },
  // Credentials.
  { name: 'no admin token', method: 'GET', path: keys, token: null, status: 401 },
  { name: 'unknown admin token', method: 'GET', path: keys, token: 'wrong', status: 401 },
  { name: 'token of another account', method: 'GET', path: keys, token: 'limited', status: 403 },
  { name: 'token of another account, write', method: 'POST', path: keys, body: VALID, token: 'limited', status: 403 },
  {
    name: 'header over the size limit',
    method: 'GET',
    path: keys,
    headers: { 'x-filler': 'x'.repeat(20_000) },
    status: 431,
  },
  // Webhook endpoints.
  hook('webhook: no url', { events: ['key.revoked'] }, ['url']),
  hook('webhook: url not a URL', { url: 'not a url', events: ['key.revoked'] }, ['url']),
  hook('webhook: ftp url', { url: 'ftp://hooks.example.com/x', events: ['key.revoked'] }, ['url']),
  hook('webhook: url with a password', { url: 'https://u:p@hooks.example.com/x', events: ['key.revoked'] }, ['url']),
  hook('webhook: url to a loopback address', { url: 'http://127.0.0.1:9/x', events: ['key.revoked'] }, ['url']),
  hook('webhook: url to the metadata address', { url: 'http://169.254.169.254/latest', events: ['key.revoked'] }, [
    'url',
  ]),
  hook(
    'webhook: url over 2048 characters',
    { url: `https://h.example.com/${'a'.repeat(2048)}`, events: ['key.revoked'] },
    ['url'],
  ),
  hook('webhook: no events', { url: 'https://hooks.example.com/x', events: [] }, ['events']),
  hook('webhook: unknown event', { url: 'https://hooks.example.com/x', events: ['key.stolen'] }, ['events/0']),
  hook('webhook: events repeated', { url: 'https://hooks.example.com/x', events: ['key.revoked', 'key.revoked'] }, [
    'events',
  ]),
  hook(
    'webhook: bidi override in description',
    { url: 'https://hooks.example.com/x', events: ['key.revoked'], description: 'a\u202eb' },
    ['description'],
  ),
  hook(
    'webhook: description over 500 characters',
    { url: 'https://hooks.example.com/x', events: ['key.revoked'], description: 'd'.repeat(501) },
    ['description'],
  ),
  hook('webhook: unknown field', { url: 'https://hooks.example.com/x', events: ['key.revoked'], secret: 'mine' }, [
    'secret',
  ]),
  {
    name: 'webhook: PATCH with nothing to change',
    method: 'PATCH',
    path: `${hooks}/whe_${'A'.repeat(20)}`,
    body: {},
    status: 400,
  },
  {
    name: 'webhook: malformed endpoint id',
    method: 'GET',
    path: `${hooks}/whe_../deliveries`,
    status: 400,
    paths: ['endpointId'],
  },
  {
    name: 'webhook: malformed delivery id',
    method: 'POST',
    path: `${hooks}/whe_${'A'.repeat(20)}/deliveries/whd_x/retry`,
    status: 400,
    paths: ['deliveryId'],
  },
  {
    name: 'webhook: forged deliveries cursor',
    method: 'GET',
    path: `${hooks}/whe_${'A'.repeat(20)}/deliveries?cursor=${cursorOf({ k: 'keys', a: ACCOUNT, c: '2026-01-01T00:00:00Z', i: 'key_x' })}`,
    status: 400,
    paths: ['cursor'],
  },
  {
    name: 'webhook: token of another account',
    method: 'POST',
    path: hooks,
    body: { url: 'https://hooks.example.com/x', events: ['key.revoked'] },
    token: 'limited',
    status: 403,
  },
  // Methods that no route has.
  { name: 'DELETE a key', method: 'DELETE', path: key, status: 404 },
  { name: 'PUT a key', method: 'PUT', path: key, body: VALID, status: 404 },
  { name: 'PUT the key list', method: 'PUT', path: keys, body: VALID, status: 404 },
  { name: 'GET revoke', method: 'GET', path: `${key}/revoke`, status: 404 },
  { name: 'POST activity', method: 'POST', path: `${key}/activity`, body: {}, status: 404 },
  { name: 'DELETE the audit log', method: 'DELETE', path: `/v1/accounts/${ACCOUNT}/audit-log`, status: 404 },
  { name: 'POST the scope catalog', method: 'POST', path: '/v1/scopes', body: {}, status: 404 },
];

export interface GrpcCase {
  name: string;
  key?: string;
  ip?: string;
  scope?: string;
  /** A gRPC status name, or a deny reason when the call is OK. */
  expect: string;
}

export const GRPC_CASES: GrpcCase[] = [
  { name: 'gRPC: empty key', key: '', expect: 'KEY_MALFORMED' },
  { name: 'gRPC: 10 KB key', key: 'otesse_live_sk_' + 'A'.repeat(10_000), expect: 'KEY_MALFORMED' },
  { name: 'gRPC: message over the size limit', key: 'x'.repeat(20_000), expect: 'RESOURCE_EXHAUSTED' },
  { name: 'gRPC: key with a NUL', key: `otesse_live_sk_${'A'.repeat(49)}\u0000`, expect: 'KEY_MALFORMED' },
  { name: 'gRPC: key with a lone surrogate', key: `otesse_live_sk_${'A'.repeat(49)}\ud800`, expect: 'KEY_MALFORMED' },
  { name: 'gRPC: Bearer prefix left on', key: `Bearer ${KEY}`, expect: 'KEY_MALFORMED' },
  { name: 'gRPC: ip with a zone id', ip: 'fe80::1%eth-0', expect: 'INVALID_ARGUMENT' },
  { name: 'gRPC: ip with leading zeros', ip: '010.0.0.1', expect: 'INVALID_ARGUMENT' },
  { name: 'gRPC: ip empty', ip: '', expect: 'INVALID_ARGUMENT' },
  { name: 'gRPC: ip with spaces', ip: ' 203.0.113.7 ', expect: 'INVALID_ARGUMENT' },
  { name: 'gRPC: ip a CIDR', ip: '203.0.113.0/24', expect: 'INVALID_ARGUMENT' },
  { name: 'gRPC: ip a host name', ip: 'localhost', expect: 'INVALID_ARGUMENT' },
  { name: 'gRPC: scope not in the catalog', scope: 'bookings:delete', expect: 'INVALID_ARGUMENT' },
  { name: 'gRPC: scope empty', scope: '', expect: 'INVALID_ARGUMENT' },
  { name: 'gRPC: IPv4-mapped IPv6 address', ip: '::ffff:203.0.113.7', expect: 'ALLOWED' },
  { name: 'gRPC: IPv4-compatible IPv6 address', ip: '::203.0.113.7', expect: 'IP_NOT_ALLOWED' },
];

/** A Watch message that ends the stream with its status; `KEY` stands for a real key id. */
export interface WatchCase {
  name: string;
  message: Record<string, unknown>;
  expect: 'INVALID_ARGUMENT' | 'RESOURCE_EXHAUSTED';
}

const use = (u: Record<string, unknown> = {}) => ({ key_id: KEY, ip: '203.0.113.7', count: 1, last_at_ms: 0, ...u });
const report = (uses: unknown[], id = 'report-0001') => ({ usage: { id, uses } });

/** Bad Watch messages: the stream ends with the status and nothing of the report is counted. */
export const WATCH_CASES: WatchCase[] = [
  { name: 'Watch: usage report id too short', message: report([use()], 'r1'), expect: 'INVALID_ARGUMENT' },
  { name: 'Watch: usage report id with a space', message: report([use()], 'report 0001'), expect: 'INVALID_ARGUMENT' },
  {
    name: 'Watch: usage of a key id that is not one',
    message: report([use({ key_id: 'nope' })]),
    expect: 'INVALID_ARGUMENT',
  },
  {
    name: 'Watch: usage from an ip that is not one',
    message: report([use({ ip: 'localhost' })]),
    expect: 'INVALID_ARGUMENT',
  },
  { name: 'Watch: usage count 0', message: report([use({ count: 0 })]), expect: 'INVALID_ARGUMENT' },
  {
    name: 'Watch: usage count over 1,000,000',
    message: report([use({ count: 1_000_001 })]),
    expect: 'INVALID_ARGUMENT',
  },
  {
    name: 'Watch: a good use, then a bad one (nothing counted)',
    message: report([use({ count: 5 }), use({ ip: '203.0.113.0/24' })]),
    expect: 'INVALID_ARGUMENT',
  },
  {
    name: 'Watch: a report over the 16 KiB message limit',
    message: report(Array.from({ length: 1_000 }, () => use())),
    expect: 'RESOURCE_EXHAUSTED',
  },
];
