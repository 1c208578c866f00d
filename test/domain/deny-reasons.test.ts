// The deny reasons the domain can produce are the proto's DenyReason values, no more and no fewer.
import type { MethodDefinition } from '@grpc/proto-loader';
import t from 'tap';
import { DENY_REASONS, deny, type DenyReason } from '../../src/domain/decision.js';
import { loadProto, SERVICE_NAME, toResponse, type AuthenticateResponse } from '../../src/transport/grpc/server.js';

const DOMAIN_REASONS: readonly DenyReason[] = DENY_REASONS;

const definition = loadProto();
const protoReasons = (definition['otesse.keys.v1.DenyReason'] as { type: { value: { name: string }[] } }).type.value
  .map((v) => v.name)
  .filter((name) => name !== 'DENY_REASON_UNSPECIFIED');

t.test("the domain denies with exactly the proto's reasons (UNSPECIFIED aside)", async (t) => {
  t.same([...DOMAIN_REASONS].sort(), [...protoReasons].sort());
});

t.test('each domain reason crosses the gRPC transport as itself', async (t) => {
  const authenticate = (definition[SERVICE_NAME] as Record<string, MethodDefinition<unknown, AuthenticateResponse>>)
    .Authenticate;
  if (!authenticate) throw new Error('the proto has no Authenticate');
  for (const reason of DOMAIN_REASONS) {
    const wire = authenticate.responseDeserialize(authenticate.responseSerialize(toResponse(deny(reason))));
    t.equal(wire.reason, reason, `${reason} is encoded and decoded unchanged`);
  }
});
