/** A bad configuration value: `message` is one line naming the variable, never its value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
