import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { buildBookingsApp } from './app.js';

const Env = Type.Object({
  BOOKINGS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  KEY_SERVICE_ADDR: Type.String({ minLength: 1, default: 'localhost:50051' }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
});

/** `npm run example:bookings`: the example bookings API on BOOKINGS_PORT, asking the key service at KEY_SERVICE_ADDR. */
async function main(): Promise<void> {
  const names = Object.keys(Env.properties);
  const given = Object.fromEntries(
    names.filter((n) => process.env[n] !== undefined).map((n) => [n, process.env[n]?.trim()]),
  );
  const empty = names.find((n) => given[n] === '');
  const parsed = Value.Default(Env, Value.Convert(Env, given));
  const error = empty === undefined ? Value.Errors(Env, parsed).First() : undefined;
  if (empty !== undefined || error !== undefined) {
    const name = empty ?? error?.path.slice(1);
    process.stderr.write(`configuration error: ${name}: ${empty ? 'is empty' : error?.message}\n`);
    process.exit(2);
  }
  const { BOOKINGS_PORT, KEY_SERVICE_ADDR, HOST } = parsed as typeof Env.static;
  const app = await buildBookingsApp({ keyServiceAddr: KEY_SERVICE_ADDR });
  await app.listen({ host: HOST, port: BOOKINGS_PORT });
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    process.once(signal, () => void app.close().then(() => process.exit(0)));
}

void main();
