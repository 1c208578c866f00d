// The one rule that decides whether a gateway's request target is matched at all (design:
// client-cannot-choose): every reading two servers may disagree on is refused with a stable code.
import t from 'tap';
import { checkRequestTarget, type TargetProblem } from '../../src/domain/request-target.js';
import { NON_CANONICAL } from '../helpers/gateway-targets.js';

t.test('canonical targets pass, with the query string cut off', async (t) => {
  const cases: Array<[string, string]> = [
    ['/', '/'],
    ['/v1/bookings', '/v1/bookings'],
    ['/v1/bookings/b_1?x=1', '/v1/bookings/b_1'],
    ['/v1/bookings/b_1?next=/../%2F%00\\', '/v1/bookings/b_1'],
    ['/v1/files/report.v2.json', '/v1/files/report.v2.json'],
    ['/v1/files/...', '/v1/files/...'],
    ['/v1/files/a%20b', '/v1/files/a%20b'],
    ['/v1/files/%C3%A9t%C3%A9', '/v1/files/%C3%A9t%C3%A9'],
    ['/v1/files/.well-known', '/v1/files/.well-known'],
  ];
  for (const [target, path] of cases) t.same(checkRequestTarget(target), { ok: true, path }, target);
});

t.test('every non-canonical form is refused with its code', async (t) => {
  const cases: Array<[string, TargetProblem]> = [
    ['/v1/webhooks/../bookings', 'DOT_SEGMENT'],
    ['/v1/webhooks/..', 'DOT_SEGMENT'],
    ['/v1/./bookings', 'DOT_SEGMENT'],
    ['/v1/webhooks/%2e%2e/bookings', 'DOT_SEGMENT'],
    ['/v1/webhooks/%2E%2e/bookings', 'DOT_SEGMENT'],
    ['/v1/webhooks/.%2E/bookings', 'DOT_SEGMENT'],
    ['/v1/webhooks/%2e/bookings', 'DOT_SEGMENT'],
    ['/v1/webhooks/..;jsessionid=1/bookings', 'DOT_SEGMENT'],
    ['/v1/webhooks/..%3b/bookings', 'DOT_SEGMENT'],
    ['/v1/webhooks/..%2Fbookings', 'ENCODED_SEPARATOR'],
    ['/v1/webhooks/..%2fbookings', 'ENCODED_SEPARATOR'],
    ['/v1/bookings/..%2F..%2Fadmin', 'ENCODED_SEPARATOR'],
    ['/v1/webhooks/..%5cbookings', 'ENCODED_SEPARATOR'],
    ['/v1/webhooks/..%5Cbookings', 'ENCODED_SEPARATOR'],
    ['/v1/webhooks/..\\bookings', 'BACKSLASH'],
    ['/v1//bookings', 'EMPTY_SEGMENT'],
    ['//v1/bookings', 'EMPTY_SEGMENT'],
    ['/v1/bookings/', 'EMPTY_SEGMENT'],
    ['/v1/bookings/b%00', 'NUL'],
    ['/v1/bookings/b\u0000', 'CONTROL_CHARACTER'],
    ['/v1/bookings/b 1', 'CONTROL_CHARACTER'],
    ['/v1/bookings/b\t1', 'CONTROL_CHARACTER'],
    ['/v1/bookings/%zz', 'BAD_PERCENT_ENCODING'],
    ['/v1/bookings/%2', 'BAD_PERCENT_ENCODING'],
    ['/v1/bookings/%', 'BAD_PERCENT_ENCODING'],
    ['/v1/bookings/%C3', 'BAD_PERCENT_ENCODING'],
    ['/v1/webhooks/%252e%252e/bookings', 'DOUBLE_ENCODED'],
    ['/v1/webhooks/..%252Fbookings', 'DOUBLE_ENCODED'],
    ['/v1/bookings/b%2500', 'DOUBLE_ENCODED'],
    ['v1/bookings', 'NOT_ORIGIN_FORM'],
    ['', 'NOT_ORIGIN_FORM'],
    ['*', 'NOT_ORIGIN_FORM'],
    ['http://evil.example/v1/bookings', 'NOT_ORIGIN_FORM'],
    ['?/v1/bookings', 'NOT_ORIGIN_FORM'],
  ];
  for (const [target, problem] of cases) {
    const r = checkRequestTarget(target);
    t.match(r, { ok: false, problem, detail: /\S/ }, `${JSON.stringify(target)}: ${problem}`);
  }
  for (const [what, , target] of NON_CANONICAL)
    t.equal(checkRequestTarget(target).ok, false, `the gateway tests' table: ${what}`);
});
