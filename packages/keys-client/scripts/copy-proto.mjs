// The package ships the contract's proto so that an installed copy is self-contained; the
// repository keeps one source of truth (proto/ at the root), copied here at build time.
import { cpSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const from = fileURLToPath(new URL('../../../proto/otesse/keys/v1/keys.proto', import.meta.url));
const to = fileURLToPath(new URL('../proto/otesse/keys/v1/keys.proto', import.meta.url));
// Outside the repository (an unpacked tarball) the copy is already there.
if (existsSync(from)) cpSync(from, to);
else if (!existsSync(to)) throw new Error(`keys.proto not found at ${from}`);
