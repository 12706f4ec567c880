/**
 * The route table: every path is versioned and unique per method, parameters are filled in
 * URL-encoded, and a missing parameter is a loud programming error rather than a wrong URL.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Routes, routePath, type RouteDef } from '../src/routes.js';

const all: [string, RouteDef][] = Object.entries(Routes);

describe('the route table', () => {
  it('has routes', () => {
    assert.ok(all.length > 20);
  });

  it('every path starts with /v1/', () => {
    for (const [name, def] of all) assert.match(def.path, /^\/v1\//, name);
  });

  it('no two routes share a method and path', () => {
    const seen = new Map<string, string>();
    for (const [name, def] of all) {
      const key = `${def.method} ${def.path.replace(/:[A-Za-z]+/g, ':')}`;
      assert.equal(seen.get(key), undefined, `${name} and ${seen.get(key)} are both ${key}`);
      seen.set(key, name);
    }
  });

  it('parameters are whole path segments with plain names', () => {
    for (const [name, def] of all) {
      for (const segment of def.path.split('/').slice(1)) assert.match(segment, /^(:[A-Za-z]+|[a-z0-9.-]+)$/, `${name}: ${segment}`);
    }
  });

  it('empty answers are 204 or have their status; bodies go only with POST, PUT and PATCH', () => {
    for (const [name, def] of all) {
      if (def.body !== undefined) assert.ok(def.method === 'POST' || def.method === 'PUT' || def.method === 'PATCH', `${name} has a body on ${def.method}`);
      if (def.status !== undefined) assert.ok(def.status >= 200 && def.status < 300, `${name}: status ${def.status}`);
    }
  });
});

describe('routePath', () => {
  it('fills parameters', () => {
    assert.equal(routePath(Routes.getTarget, { name: 'web1' }), '/v1/targets/web1');
    assert.equal(routePath(Routes.setSecret, { name: 'db', secret: 'DB_PASSWORD' }), '/v1/targets/db/secrets/DB_PASSWORD');
    assert.equal(routePath(Routes.health), '/v1/health');
  });

  it('URL-encodes parameters, so a value cannot add path segments or a query', () => {
    assert.equal(routePath(Routes.getTask, { id: '../agents' }), '/v1/tasks/..%2Fagents');
    assert.equal(routePath(Routes.getTarget, { name: 'a b?c=d#e&f' }), '/v1/targets/a%20b%3Fc%3Dd%23e%26f');
    assert.equal(routePath(Routes.getTarget, { name: 'é' }), '/v1/targets/%C3%A9');
  });

  // Except '.' and '..': URL parsing (fetch, undici) resolves those, and their encoded forms, as
  // dot segments. No valid target name, task id or secret name is one.
  it('any other value round-trips through the URL as one segment (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }).filter((v) => v !== '.' && v !== '..'),
        (value) => {
          const path = routePath(Routes.getTarget, { name: value });
          const segments = new URL(path, 'https://ferry.example').pathname.split('/');
          assert.equal(segments.length, 4);
          assert.equal(decodeURIComponent(segments[3] ?? ''), value);
        },
      ),
    );
  });

  it('throws on a missing parameter, naming it', () => {
    assert.throws(() => routePath(Routes.getTarget, {}), /GET \/v1\/targets\/:name: no value for :name/);
    assert.throws(() => routePath(Routes.deleteSecret, { name: 'db' }), /no value for :secret/);
    assert.throws(() => routePath(Routes.getTask), /no value for :id/);
  });
});
