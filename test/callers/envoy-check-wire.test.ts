// Envoy's bytes, not ours: CheckRequests assembled by hand from the field numbers of Envoy's own
// protos and sent to Check through a client that serializes nothing (bytes in, bytes out), so a
// drift of the proto subset in proto/envoy from Envoy's wire format fails here. Field numbers, from
// envoyproxy/envoy api/envoy/service/auth/v3/{external_auth,attribute_context}.proto,
// api/envoy/config/core/v3/{address,base}.proto and googleapis google/rpc/status.proto:
//   CheckRequest.attributes = 1
//   AttributeContext.source = 1, .request = 4, .context_extensions = 10 (map<string,string>)
//   AttributeContext.Peer.address = 1; Address.socket_address = 1; SocketAddress.address = 2
//   AttributeContext.Request.http = 2
//   AttributeContext.HttpRequest.method = 2, .headers = 3 (map<string,string>), .path = 4, .header_map = 13
//   HeaderMap.headers = 1; HeaderValue.key = 1, .value = 2, .raw_value = 3
//   a map entry: key = 1, value = 2
//   CheckResponse.status = 1, .denied_response = 2, .ok_response = 3; google.rpc.Status.code = 1
//   OkHttpResponse.headers = 2, .headers_to_remove = 5; HeaderValueOption.header = 1
//   DeniedHttpResponse.status = 1 (envoy.type.v3.HttpStatus.code = 1), .headers = 2, .body = 3
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createKey, startTestApp } from '../helpers/app.js';
import { rawCheckClient } from '../helpers/envoy.js';

/** A varint (the values here are all small). */
function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
/** A length-delimited field (wire type 2): a string, bytes, a message or a map entry. */
const field = (num: number, payload: Buffer | string) => {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([varint((num << 3) | 2), varint(bytes.length), bytes]);
};
const entry = (num: number, key: string, value: string) => field(num, Buffer.concat([field(1, key), field(2, value)]));

// AttributeContext.source (1) { Peer.address (1) { Address.socket_address (1) { SocketAddress.address (2) "203.0.113.7" } } },
// written out byte by byte: tag 0x0a = field 1, wire type 2; tag 0x12 = field 2, wire type 2.
const SOURCE = Buffer.from('0a11' + '0a0f' + '0a0d' + '120b' + '3230332e302e3131332e37', 'hex');

/** CheckRequest { attributes (1) { source, request (4) { http (2) { … } }, context_extensions (10) } }. */
function checkRequest(http: Buffer, scope?: string): Buffer {
  const attributes = Buffer.concat([
    SOURCE,
    field(4, field(2, http)),
    scope ? entry(10, 'scope', scope) : Buffer.alloc(0),
  ]);
  return field(1, attributes);
}

type Fields = Map<number, Array<Buffer | number>>;
/** Read one message's fields (varints as numbers, length-delimited as bytes). */
function read(buf: Buffer): Fields {
  const out: Fields = new Map();
  let i = 0;
  const next = () => {
    let n = 0;
    let shift = 0;
    let b: number;
    do {
      b = buf[i++] ?? 0;
      n += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return n;
  };
  while (i < buf.length) {
    const tag = next();
    const num = tag >>> 3;
    let value: Buffer | number;
    if ((tag & 7) === 0) value = next();
    else if ((tag & 7) === 2) {
      const len = next();
      value = buf.subarray(i, i + len);
      i += len;
    } else throw new Error(`unexpected wire type ${tag & 7}`);
    out.set(num, [...(out.get(num) ?? []), value]);
  }
  return out;
}
const one = (f: Fields, num: number) => f.get(num)?.[0];
const sub = (f: Fields, num: number) => read((one(f, num) as Buffer | undefined) ?? Buffer.alloc(0));
const text = (f: Fields, num: number) => String(one(f, num) ?? '');
/** HeaderValueOption list → { key: value }. */
const headersOf = (f: Fields) =>
  Object.fromEntries(
    (f.get(2) ?? []).map((h) => {
      const header = sub(read(h as Buffer), 1);
      return [text(header, 1), text(header, 2)];
    }),
  );

t.test("Check decodes Envoy's CheckRequest bytes and answers in Envoy's CheckResponse bytes", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-routes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'routes.yaml'),
    'routes:\n  - { method: GET, path: /v1/bookings/:id, scope: "bookings:read" }\n',
  );
  const app = await startTestApp(t, { FORWARD_AUTH_ROUTES: join(dir, 'routes.yaml') });
  const check = rawCheckClient(t, app.grpcPort);
  // Allowed only from 203.0.113.0/24: an allow shows that the source address was read from its bytes.
  const key = await createKey(app, 'acct_1', { scopes: ['bookings:read'], allowed_ips: ['203.0.113.0/24'] });

  // HttpRequest { method (2), headers (3): map entries, path (4) }, scope from context_extensions (10).
  const viaHeaders = Buffer.concat([
    field(2, 'GET'),
    entry(3, ':authority', 'api.otesse.com'),
    entry(3, 'x-api-key', key.secret),
    field(4, '/v1/bookings/b_1'),
  ]);
  const ok = read(await check(checkRequest(viaHeaders, 'bookings:read')));
  t.equal(one(sub(ok, 1), 1) ?? 0, 0, 'CheckResponse.status.code 0 (OK)');
  t.notOk(ok.has(2), 'no denied_response');
  const okResponse = sub(ok, 3);
  t.match(
    headersOf(okResponse),
    { 'x-otesse-key-id': key.id, 'x-otesse-account-id': 'acct_1' },
    'ok_response.headers: the identity',
  );
  t.same((okResponse.get(5) ?? []).map(String), ['x-api-key'], 'ok_response.headers_to_remove: the key header');

  // encode_raw_headers: HttpRequest.header_map (13) { headers (1): HeaderValue { key (1), raw_value (3) } }; scope from the route map.
  const rawHeader = field(1, Buffer.concat([field(1, 'x-api-key'), field(3, Buffer.from(key.secret))]));
  const viaHeaderMap = Buffer.concat([field(2, 'GET'), field(4, '/v1/bookings/b_1'), field(13, rawHeader)]);
  const raw = read(await check(checkRequest(viaHeaderMap)));
  t.equal(one(sub(raw, 1), 1) ?? 0, 0, 'header_map with raw_value, scope from method and path: OK');

  const denied = read(await check(checkRequest(viaHeaders, 'invoices:read')));
  t.equal(one(sub(denied, 1), 1), 7, 'a scope the key lacks: PERMISSION_DENIED');
  const deniedResponse = sub(denied, 2);
  t.equal(one(sub(deniedResponse, 1), 1), 403, 'denied_response.status.code 403');
  t.equal(headersOf(deniedResponse)['x-otesse-deny-reason'], 'SCOPE_NOT_GRANTED', 'denied_response.headers');
  t.match(JSON.parse(text(deniedResponse, 3)), { status: 403 }, 'denied_response.body: problem+json');

  const dotted = Buffer.concat([
    field(2, 'GET'),
    entry(3, 'x-api-key', key.secret),
    field(4, '/v1/bookings/..%2Fadmin'),
  ]);
  const refused = read(await check(checkRequest(dotted)));
  t.equal(one(sub(sub(refused, 2), 1), 1), 400, 'a path with an encoded dot segment: denied_response 400');
});
