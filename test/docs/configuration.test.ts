// docs/configuration.md is the users' list of settings: it names every variable the configuration reads.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { schema } from '../../src/config/schema.js';

t.test('docs/configuration.md names every variable of the configuration schema', async (t) => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  const names = Object.keys(schema.properties);
  t.ok(names.length > 50, `${names.length} variables`);
  t.same(
    names.filter((name) => !doc.includes(`\`${name}\``)),
    [],
    'no variable is missing from the docs',
  );
});
