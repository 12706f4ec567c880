/**
 * Durations (`--timeout 1h30m`) and sizes (`--max-output 100MB`, `--memory 512M`). The size
 * rule is written at SIZE_UNITS in duration.ts: KB/MB/GB are decimal; K/Ki/KiB (and M, G) are
 * binary; units are case-insensitive. Malformed input gives undefined, never a guess.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseDurationSeconds, parseSizeBytes } from '../src/duration.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('durations', () => {
  const cases: [string, number][] = [
    ['90', 90],
    ['0', 0],
    ['2.5', 2.5],
    [' 90 ', 90],
    ['90s', 90],
    ['5m', 300],
    ['2h', 7200],
    ['1d', 86_400],
    ['1h30m', 5400],
    ['1h30m15s', 5415],
    ['1d2h', 93_600],
    ['1m30s', 90],
    ['250ms', 0.25],
    ['1s500ms', 1.5],
    ['1.5h', 5400],
    ['0.5m', 30],
  ];
  for (const [text, seconds] of cases) {
    it(`${JSON.stringify(text)} is ${seconds} s`, () => {
      assert.equal(parseDurationSeconds(text), seconds);
    });
  }

  it('malformed durations give undefined', () => {
    for (const text of ['', ' ', 'abc', '5x', '-5', '-5m', 'm5', '5 m', '1h 30m', '1m30', 'h', '.5', '5.', '1e3', '5mm', '10mss', '1h-30m', '1y', '5M', '5S']) {
      assert.equal(parseDurationSeconds(text), undefined, JSON.stringify(text));
    }
  });

  it('a sum of parts parses to the sum of their seconds (property)', () => {
    const unit = fc.constantFrom(['d', 86_400], ['h', 3600], ['m', 60], ['s', 1], ['ms', 0.001]);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(1000), unit), { minLength: 1, maxLength: 5 }), (parts) => {
        const text = parts.map(([n, [u]]) => `${n}${u}`).join('');
        const expected = parts.reduce((sum, [n, [, factor]]) => sum + n * factor, 0);
        const got = parseDurationSeconds(text);
        assert.ok(got !== undefined && Math.abs(got - expected) < 1e-9, `${text}: ${got} ≠ ${expected}`);
      }),
    );
  });
});

describe('sizes: KB/MB/GB decimal, K/Ki/KiB binary, case-insensitive', () => {
  const cases: [string, number][] = [
    ['1048576', 1_048_576],
    ['0', 0],
    ['1B', 1],
    ['10b', 10],
    // decimal: a decimal prefix spelled with B
    ['1KB', 1000],
    ['1kb', 1000],
    ['1Kb', 1000],
    ['100MB', 100_000_000],
    ['100mb', 100_000_000],
    ['2GB', 2_000_000_000],
    ['2gB', 2_000_000_000],
    // binary: the bare prefix, the IEC prefix, and the IEC prefix with B
    ['1K', KiB],
    ['1k', KiB],
    ['1Ki', KiB],
    ['1KiB', KiB],
    ['1kib', KiB],
    ['1KIB', KiB],
    ['512M', 512 * MiB],
    ['512m', 512 * MiB],
    ['512Mi', 512 * MiB],
    ['512MiB', 512 * MiB],
    ['2G', 2 * GiB],
    ['2Gi', 2 * GiB],
    ['2GiB', 2 * GiB],
    ['2gib', 2 * GiB],
    // fractions are rounded to whole bytes; a space before the unit is allowed
    ['1.5K', 1536],
    ['0.5MB', 500_000],
    ['1.0001K', 1024],
    ['10 MiB', 10 * MiB],
    [' 256MiB ', 256 * MiB],
  ];
  for (const [text, bytes] of cases) {
    it(`${JSON.stringify(text)} is ${bytes} bytes`, () => {
      assert.equal(parseSizeBytes(text), bytes);
    });
  }

  it('malformed sizes give undefined', () => {
    for (const text of ['', ' ', 'M', 'MB', '-1M', '1TB', '1T', '1 2M', '1MBB', '1KBi', '1e3', '1.5.5K', '.5K', '1,000', '0x10', '1 K B', '5 mega']) {
      assert.equal(parseSizeBytes(text), undefined, JSON.stringify(text));
    }
  });

  it('any unit in any case means the same (property)', () => {
    const unit = fc.constantFrom('k', 'ki', 'kib', 'kb', 'm', 'mi', 'mib', 'mb', 'g', 'gi', 'gib', 'gb', 'b', '');
    const caseMask = fc.array(fc.boolean(), { minLength: 3, maxLength: 3 });
    fc.assert(
      fc.property(fc.nat(100_000), unit, caseMask, (n, u, mask) => {
        const mixed = [...u].map((c, i) => (mask[i] ? c.toUpperCase() : c)).join('');
        assert.equal(parseSizeBytes(`${n}${mixed}`), parseSizeBytes(`${n}${u}`));
        const decimal = u.length === 2 && u.endsWith('b') && u !== 'b';
        const factor = u === '' || u === 'b' ? 1 : (decimal ? 1000 : 1024) ** ('kmg'.indexOf(u[0] ?? '') + 1);
        assert.equal(parseSizeBytes(`${n}${u}`), n * factor);
      }),
    );
  });
});
