#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { loadProto, type AuthenticateRequest, type AuthenticateResponse } from './transport/grpc/server.js';

const USAGE = `usage: otesse-keys authenticate --ip <address> --scope <scope> [--key <key> | --key-file <path>] [--addr host:port]
  The key may also come from the OTESSE_KEY environment variable (kept out of shell history and ps).
  Prints the AuthenticateResponse as JSON; exits 0 when allowed, 1 when denied, 2 on an error.`;

type Client = grpc.Client & {
  Authenticate(req: AuthenticateRequest, cb: (err: grpc.ServiceError | null, res?: AuthenticateResponse) => void): void;
};

/** A small client of the KeyService for the README quickstart and for operators. */
async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { key: { type: 'string' }, 'key-file': { type: 'string' }, ip: { type: 'string' }, scope: { type: 'string' }, addr: { type: 'string' } },
  });
  const key = values.key ?? (values['key-file'] ? readFileSync(values['key-file'], 'utf8').trim() : process.env.OTESSE_KEY);
  if (positionals[0] !== 'authenticate' || key === undefined || !values.ip || !values.scope) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const proto = grpc.loadPackageDefinition(loadProto()) as unknown as { otesse: { keys: { v1: { KeyService: new (a: string, c: grpc.ChannelCredentials) => Client } } } };
  const client = new proto.otesse.keys.v1.KeyService(values.addr ?? 'localhost:50051', grpc.credentials.createInsecure());
  const res = await new Promise<AuthenticateResponse>((resolve, reject) => {
    client.Authenticate({ key, ip: values.ip ?? '', scope: values.scope ?? '' }, (err, out) => (err || !out ? reject(err) : resolve(out)));
  }).finally(() => client.close());
  const { allowed, reason, key_id, account_id, environment, scopes } = res;
  process.stdout.write(`${JSON.stringify({ allowed, reason, key_id, account_id, environment, scopes }, null, 2)}\n`);
  return res.allowed ? 0 : 1;
}

main().then((code) => process.exit(code), (err: unknown) => {
  const e = err as grpc.ServiceError;
  process.stderr.write(`error: ${e.code !== undefined ? `${grpc.status[e.code]}: ${e.details}` : String(err)}\n`);
  process.exit(2);
});
