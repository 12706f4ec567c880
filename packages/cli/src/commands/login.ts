import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { normalizeFingerprint } from '@ferry/protocol';
import { ApiClient, fetchPinnedCa, fingerprintOf } from '@ferry/agent';
import { UsageError } from '../errors.js';
import { saveSettings } from '../settings.js';

export function registerLoginCommand(program: Command): void {
  program.command('login')
    .description('store the server URL, token and pinned CA for later commands')
    .requiredOption('--server <url>', 'server URL, e.g. https://127.0.0.1:8443')
    .requiredOption('--token <token>', 'API token (the admin token is in the server\'s data folder)')
    .option('--ca-fingerprint <sha256>', 'SHA-256 fingerprint of the server\'s CA, as `ferry server` prints it')
    .option('--ca-file <file>', 'the server\'s CA certificate (ca.pem in its data folder)')
    .action(async (opts: { server: string; token: string; caFingerprint?: string; caFile?: string }) => {
      let url: URL;
      try {
        url = new URL(opts.server);
      } catch {
        throw new UsageError(`--server ${opts.server} is not a URL; use e.g. https://127.0.0.1:8443`);
      }
      if (url.protocol !== 'https:') throw new UsageError('Ferry speaks HTTPS only: use an https:// URL.');
      if (!opts.caFingerprint && !opts.caFile) throw new UsageError('Give --ca-fingerprint (printed by `ferry server`) or --ca-file so the CLI can verify the server.');
      let caPem: string;
      if (opts.caFile) {
        caPem = readFileSync(opts.caFile, 'utf8');
        const fp = fingerprintOf(caPem);
        if (opts.caFingerprint && normalizeFingerprint(opts.caFingerprint) !== fp) throw new UsageError(`${opts.caFile} has fingerprint ${fp}, not ${opts.caFingerprint}.`);
      } else {
        caPem = await fetchPinnedCa(url.origin, opts.caFingerprint ?? '');
      }
      const client = new ApiClient({ serverUrl: url.origin, caPem, token: opts.token, userAgent: 'ferry-cli' });
      try {
        await client.json('GET', '/v1/targets');
      } finally {
        await client.close();
      }
      const file = saveSettings({ server: url.origin, token: opts.token, caFingerprint: fingerprintOf(caPem), caPem });
      process.stdout.write(`Logged in to ${url.origin}. Settings saved in ${file}.\n`);
    });
}
