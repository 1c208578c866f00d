import t from 'tap';
import { capturedLogs, createKey, startTestApp } from './helpers/app.js';
const app = await startTestApp(t);
t.test('probe', async (t) => {
  let misses = 0;
  for (let i = 0; i < 40; i++) {
    const k = await createKey(app, 'acct_probe');
    const before = app.invalidator.healthy;
    await app.authenticate({ key: k.secret });
    if (!before || !app.invalidator.healthy) misses++;
  }
  console.error('PROBE unhealthy', misses, capturedLogs.filter((l) => /subscription lost|redis error|not published/.test(l)).map((l) => l.slice(0, 300)));
  t.ok(true);
});
