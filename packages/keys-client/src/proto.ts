import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

/** The proto shipped in the package (copied from the repository's proto/ at build time). */
export const PROTO_ROOT = fileURLToPath(new URL('../proto/', import.meta.url));
export const PROTO_FILE = 'otesse/keys/v1/keys.proto';
export const SERVICE_NAME = 'otesse.keys.v1.KeyService';

/** Load the KeyService proto: field names as in the proto, enums as their names. */
export function loadKeysProto(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    enums: String,
    defaults: true,
    longs: Number,
  });
}
