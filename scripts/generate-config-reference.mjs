#!/usr/bin/env node
/**
 * Writes docs/configuration.md from the config schemas (packages/cli/src/config-reference.ts,
 * built). Run after `npm run build`; test/conventions/config-reference.test.ts fails when the
 * file in the tree differs from what this writes.
 */
import { writeFileSync } from 'node:fs';
import { URL } from 'node:url';
import { configReference } from '../packages/cli/dist/config-reference.js';

writeFileSync(new URL('../docs/configuration.md', import.meta.url), configReference());
