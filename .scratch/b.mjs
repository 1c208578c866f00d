import ipaddr from 'ipaddr.js';
for (const s of ['::10.1.2.3', '::a01:203', '::ffff:10.1.2.3', '::1', '::2']) { const a = ipaddr.parse(s); console.log(s, a.toString(), a.range(), a.isIPv4MappedAddress()); }
