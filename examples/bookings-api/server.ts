import { z } from 'zod';
import { buildBookingsApp } from './app.js';

const env = z.object({
  BOOKINGS_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  KEY_SERVICE_ADDR: z.string().trim().min(1).default('localhost:50051'),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
});

/** `npm run example:bookings`: the example bookings API on BOOKINGS_PORT, asking the key service at KEY_SERVICE_ADDR. */
async function main(): Promise<void> {
  const empty = Object.keys(env.shape).find((name) => process.env[name] === '');
  const parsed = env.safeParse(process.env);
  if (empty !== undefined || !parsed.success) {
    const issue = parsed.error?.issues[0];
    process.stderr.write(`configuration error: ${empty ?? String(issue?.path[0])}: ${empty ? 'is empty' : issue?.message}\n`);
    process.exit(2);
  }
  const { BOOKINGS_PORT, KEY_SERVICE_ADDR, HOST } = parsed.data;
  const app = await buildBookingsApp({ keyServiceAddr: KEY_SERVICE_ADDR });
  await app.listen({ host: HOST, port: BOOKINGS_PORT });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void app.close().then(() => process.exit(0)));
}

void main();
