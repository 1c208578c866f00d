// The leak-report and metrics listeners' variables: defaults, parsing, one line naming the variable.
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';

t.test('LEAK_REPORT_PORT, GITHUB_SECRET_SCANNING_KEYS_URL and METRICS_PORT', async (t) => {
  const defaults = loadConfig({});
  t.equal(defaults.LEAK_REPORT_PORT, undefined, 'leak reports are off unless asked for');
  t.equal(defaults.METRICS_PORT, undefined, '/metrics stays on the admin port unless asked for');
  t.equal(defaults.GITHUB_SECRET_SCANNING_KEYS_URL, 'https://api.github.com/meta/public_keys/secret_scanning');
  const set = loadConfig({
    LEAK_REPORT_PORT: '8082',
    METRICS_PORT: '9090',
    GITHUB_SECRET_SCANNING_KEYS_URL: 'https://ghe.example/api/v3/meta/public_keys/secret_scanning',
  });
  t.same(
    [set.LEAK_REPORT_PORT, set.METRICS_PORT, set.GITHUB_SECRET_SCANNING_KEYS_URL],
    [8082, 9090, 'https://ghe.example/api/v3/meta/public_keys/secret_scanning'],
  );
  for (const [name, value] of [
    ['LEAK_REPORT_PORT', '70000'],
    ['LEAK_REPORT_PORT', 'eight'],
    ['METRICS_PORT', '-1'],
    ['GITHUB_SECRET_SCANNING_KEYS_URL', 'ftp://keys.example/list'],
    ['GITHUB_SECRET_SCANNING_KEYS_URL', 'not a url'],
  ] as const) {
    let message = '';
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      message = err instanceof ConfigError ? err.message : `not a ConfigError: ${String(err)}`;
    }
    t.ok(
      message.startsWith(`${name}:`) && !message.includes(value) && !message.includes('\n'),
      `${name}=${value}: "${message}"`,
    );
  }
});
