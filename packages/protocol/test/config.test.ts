/**
 * The one configuration loader: flags > environment (`FERRY_*`) > config file > defaults;
 * unknown keys and malformed values are errors (ConfigError), from whichever source; the
 * result is frozen.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { ConfigError, envName, loadConfig } from '../src/config.js';

const Schema = z.object({
  listen: z.string().default('127.0.0.1:8443'),
  leaseSeconds: z.coerce.number().int().positive().default(15),
  dataDir: z.string().default('./ferry-data'),
  verbose: z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean()).default(false),
});

const file = (value: unknown, name = 'ferry.json'): { name: string; text: string } => ({ name, text: JSON.stringify(value) });

describe('the configuration loader', () => {
  it('uses the defaults when no source gives a value', () => {
    assert.deepEqual({ ...loadConfig(Schema, {}) }, { listen: '127.0.0.1:8443', leaseSeconds: 15, dataDir: './ferry-data', verbose: false });
  });

  it('precedence: flags > environment > file > defaults, key by key', () => {
    const config = loadConfig(Schema, {
      file: file({ listen: 'file:1', leaseSeconds: 30, dataDir: '/from/file' }),
      env: { FERRY_LISTEN: 'env:2', FERRY_LEASE_SECONDS: '45' },
      flags: { listen: 'flag:3' },
    });
    assert.equal(config.listen, 'flag:3');
    assert.equal(config.leaseSeconds, 45);
    assert.equal(config.dataDir, '/from/file');
    assert.equal(config.verbose, false);
  });

  it('each source alone wins over the ones below it', () => {
    const sources = { file: file({ leaseSeconds: 30 }), env: { FERRY_LEASE_SECONDS: '45' }, flags: { leaseSeconds: 60 } };
    assert.equal(loadConfig(Schema, sources).leaseSeconds, 60);
    assert.equal(loadConfig(Schema, { ...sources, flags: {} }).leaseSeconds, 45);
    assert.equal(loadConfig(Schema, { file: sources.file }).leaseSeconds, 30);
  });

  it('a flag given as undefined and an empty environment variable mean "not given"', () => {
    const config = loadConfig(Schema, { file: file({ listen: 'file:1' }), env: { FERRY_LISTEN: '' }, flags: { listen: undefined } });
    assert.equal(config.listen, 'file:1');
  });

  it("reads FERRY_ + the key in upper snake case, and only the schema's keys", () => {
    assert.equal(envName('leaseSeconds'), 'FERRY_LEASE_SECONDS');
    assert.equal(envName('dataDir'), 'FERRY_DATA_DIR');
    assert.equal(envName('listen'), 'FERRY_LISTEN');
    const config = loadConfig(Schema, { env: { FERRY_DATA_DIR: '/env', FERRY_VERBOSE: 'true', FERRY_SOMETHING_ELSE: 'x', HOME: '/root' } });
    assert.equal(config.dataDir, '/env');
    assert.equal(config.verbose, true);
  });

  it('rejects unknown keys in the file, naming them', () => {
    assert.throws(
      () => loadConfig(Schema, { file: file({ listen: 'a:1', lisen: 'typo:2' }) }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /lisen/);
        return true;
      },
    );
  });

  it('rejects unknown flags', () => {
    assert.throws(() => loadConfig(Schema, { flags: { nope: 1 } }), ConfigError);
  });

  it('malformed JSON in the file is a ConfigError naming the file, with the parse error as cause', () => {
    assert.throws(
      () => loadConfig(Schema, { file: { name: '/etc/ferry.json', text: '{ "listen": ' } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.name, 'ConfigError');
        assert.match(err.message, /\/etc\/ferry\.json/);
        assert.ok(err.cause instanceof SyntaxError);
        return true;
      },
    );
  });

  it('a file that is JSON but not an object is a ConfigError', () => {
    for (const text of ['[]', 'null', '42', '"text"', 'true']) {
      assert.throws(() => loadConfig(Schema, { file: { name: 'c.json', text } }), ConfigError, text);
    }
  });

  it('a malformed value from any source is a ConfigError naming the key', () => {
    const bad = [
      { file: file({ leaseSeconds: 'soon' }) },
      { env: { FERRY_LEASE_SECONDS: '-1' } },
      { flags: { leaseSeconds: 1.5 } },
      { env: { FERRY_VERBOSE: 'yes' } },
    ];
    for (const sources of bad) {
      assert.throws(
        () => loadConfig(Schema, sources),
        (err: unknown) => err instanceof ConfigError && /leaseSeconds|verbose/.test(err.message),
        JSON.stringify(sources),
      );
    }
  });

  it('returns a frozen object', () => {
    const config = loadConfig(Schema, {});
    assert.ok(Object.isFrozen(config));
    assert.throws(() => {
      (config as { listen: string }).listen = 'changed';
    }, TypeError);
  });
});
