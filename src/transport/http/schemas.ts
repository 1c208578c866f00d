// The admin API's request and response schemas, one file per resource under schemas/; routes read them
// as `S.*` from here, and the OpenAPI description is generated from them.
export { AccountParams, KeyParams, PageQuery, Problem, Readable, Scope, WindowQuery } from './schemas/common.js';
export {
  CreateBody,
  IssuedKey,
  KeyPage,
  KeyResource,
  KeyWithPropagation,
  ListQuery,
  PatchBody,
  Propagation,
  RevokeAllBody,
  RevokeBody,
  RotateBody,
  RotatedKey,
} from './schemas/keys.js';
export { AuditEntry, AuditPage } from './schemas/audit.js';
export { ActivityBody } from './schemas/activity.js';
export {
  DeliveryPage,
  DeliveryParams,
  Endpoint,
  EndpointBody,
  EndpointList,
  EndpointParams,
  EndpointPatchBody,
  EndpointWithSecret,
  TestSent,
} from './schemas/webhooks.js';
