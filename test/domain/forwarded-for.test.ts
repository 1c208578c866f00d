// Envoy Check finds the client behind trusted proxies with its own small function; forward auth
// uses Fastify's trustProxy (proxy-addr). Both must name the same client on the same table.
import Fastify from 'fastify';
import t from 'tap';
import { clientAddress, trustedProxies } from '../../src/domain/forwarded-for.js';

const CASES: Array<[string, string | undefined, string[]]> = [
  // [peer, X-Forwarded-For, TRUST_PROXY]
  ['10.1.2.3', '198.51.100.9', ['10.0.0.0/8']],
  ['10.1.2.3', '198.51.100.9, 10.0.0.5', ['10.0.0.0/8']],
  ['10.1.2.3', '198.51.100.9, 203.0.113.50', ['10.0.0.0/8']],
  ['10.1.2.3', '198.51.100.9,203.0.113.50 ,  10.9.9.9', ['10.0.0.0/8']],
  ['10.1.2.3', '10.0.0.7, 10.0.0.5', ['10.0.0.0/8']],
  ['10.1.2.3', 'not-an-ip, 10.0.0.5', ['10.0.0.0/8']],
  ['10.1.2.3', '198.51.100.9,, 10.0.0.5', ['10.0.0.0/8']],
  ['10.1.2.3', '', ['10.0.0.0/8']],
  ['10.1.2.3', undefined, ['10.0.0.0/8']],
  ['203.0.113.7', '198.51.100.9', ['10.0.0.0/8']],
  ['10.1.2.3', '198.51.100.9', []],
  ['::ffff:10.1.2.3', '198.51.100.9', ['10.0.0.0/8']],
  ['10.1.2.3', '::ffff:10.0.0.5, 2001:db8::1', ['10.0.0.0/8']],
  ['2001:db8::10', '2001:db8:1::1, 2001:db8::11', ['2001:db8::/64']],
  ['127.0.0.1', '198.51.100.9', ['127.0.0.1']],
];

t.test('clientAddress names the client Fastify trustProxy (proxy-addr) names', async (t) => {
  for (const [peer, xff, trust] of CASES) {
    const app = Fastify({ trustProxy: trust.length > 0 ? trust : false });
    app.get('/', async (request) => ({ ip: request.ip }));
    const res = await app.inject({
      method: 'GET',
      url: '/',
      remoteAddress: peer,
      headers: xff === undefined ? {} : { 'x-forwarded-for': xff },
    });
    const fastify = res.json<{ ip: string }>().ip;
    t.equal(
      clientAddress(peer, xff, trustedProxies(trust)),
      fastify,
      `${peer} via ${JSON.stringify(xff)} trusting ${trust.join(',') || 'none'}: ${fastify}`,
    );
    await app.close();
  }
});
