/**
 * The agent's `publicDns` setting: the resolvers a `--network public` task gets. Only public IP
 * addresses are taken, since the task's filter would drop queries to any other.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadAgentConfig } from '../src/config.js';

test('publicDns: 1.1.1.1 and 8.8.8.8 by default; a list of public addresses from FERRY_PUBLIC_DNS', () => {
  assert.deepEqual(loadAgentConfig({}, {}).publicDns, ['1.1.1.1', '8.8.8.8']);
  assert.deepEqual(loadAgentConfig({}, { FERRY_PUBLIC_DNS: ' 9.9.9.9, 2620:fe::fe ' }).publicDns, ['9.9.9.9', '2620:fe::fe']);
});

test('publicDns refuses names, and resolvers a public task could not reach, naming them', () => {
  assert.throws(() => loadAgentConfig({}, { FERRY_PUBLIC_DNS: 'dns.google' }), /use IP addresses/);
  for (const resolver of ['10.0.0.2', '127.0.0.53', '169.254.169.253', 'fd00:ec2::253', '192.168.1.1']) {
    assert.throws(
      () => loadAgentConfig({}, { FERRY_PUBLIC_DNS: `1.1.1.1,${resolver}` }),
      new RegExp(`${resolver.replaceAll('.', '\\.')}: public tasks cannot reach`),
    );
  }
});
