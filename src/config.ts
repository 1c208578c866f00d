import { checker } from './validation.js';
import { checkCombinations } from './config/checks.js';
import { ConfigError } from './config/error.js';
import { InvalidValue, parsers, type Config, type Parsers } from './config/parsers.js';
import { schema, TRIMMED, type Variables } from './config/schema.js';

// The public entry: the schema, the parsers of single values and the checks across them live in config/.
export { ConfigError } from './config/error.js';
export type { AdminToken, Config } from './config/parsers.js';

const check = checker(schema, 'text');

/**
 * Read and validate the environment once into a frozen object; throws ConfigError naming the variable.
 * `migrateOnly`: for `npm run migrate` (the migration Job), which needs PostgreSQL and nothing else.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  opts: { migrateOnly?: boolean } = {},
): Config {
  const names = Object.keys(schema.properties);
  // An empty value (an empty Kubernetes secret, say) is a mistake, never the same as unset.
  const empty = names.find((name) => env[name] !== undefined && env[name]?.trim() === '');
  if (empty) throw new ConfigError(`${empty}: is empty; unset it or give it a value`);
  const present = Object.fromEntries(
    names.flatMap((name) => {
      const value = env[name];
      return value === undefined ? [] : [[name, TRIMMED.has(name) ? value.trim() : value]];
    }),
  );
  const result = check(present);
  if (!result.ok) throw new ConfigError(`${result.issue.path || 'configuration'}: ${result.issue.message}`);
  const config = parse(result.value);
  checkCombinations(config, opts.migrateOnly ?? false);
  return Object.freeze(config);
}

/** The checked variables with the parsed ones replaced by their parsers' values. */
function parse(variables: Variables): Config {
  const config: Record<string, unknown> = { ...variables };
  for (const [name, parser] of Object.entries(parsers) as [keyof Parsers, (text: string) => unknown][]) {
    const text = variables[name];
    if (text === undefined) continue;
    try {
      config[name] = parser(text);
    } catch (err) {
      if (err instanceof InvalidValue) throw new ConfigError(`${name}: ${err.message}`);
      throw err;
    }
  }
  return config as Config;
}
