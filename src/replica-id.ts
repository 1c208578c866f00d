import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/** A replica's id when REPLICA_ID is not set: the host (the pod's name) and a random suffix, unique across restarts. */
export function newReplicaId(): string {
  return `${hostname()}-${randomUUID().slice(0, 8)}`;
}
