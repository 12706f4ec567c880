/**
 * The ECS task definitions (deploy/ecs/*.json, for `aws ecs register-task-definition
 * --cli-input-json file://...`), checked against the AWS SDK's own type for that call: each
 * file's JSON is compiled by TypeScript as a `RegisterTaskDefinitionCommandInput` literal, so a
 * misspelt field (an excess property), a wrong type or an unknown enum value fails. Then what
 * the types cannot say: Fargate's rules, secrets from Secrets Manager, agents listen on no port.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import type { RegisterTaskDefinitionCommandInput } from '@aws-sdk/client-ecs';
import { ROOT } from '../helpers/ferry.js';

const DIR = join(ROOT, 'deploy/ecs');
const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));

/** Type errors of `const def: RegisterTaskDefinitionCommandInput = <json>` for each text, by name. */
function typeErrors(texts: ReadonlyMap<string, string>): Map<string, string[]> {
  const virtual = new Map([...texts].map(([name, text]) => [join(ROOT, 'test/e2e', `__ecs_${name}.ts`), text]));
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules/@types')],
    skipLibCheck: true,
  };
  const base = ts.createCompilerHost(options);
  const source = (name: string): string | undefined => {
    const text = virtual.get(name);
    return text === undefined
      ? undefined
      : `import type { RegisterTaskDefinitionCommandInput } from '@aws-sdk/client-ecs';\nexport const def: RegisterTaskDefinitionCommandInput = ${text};\n`;
  };
  const host: ts.CompilerHost = {
    ...base,
    fileExists: (name) => virtual.has(name) || base.fileExists(name),
    readFile: (name) => source(name) ?? base.readFile(name),
    getSourceFile: (name, lang, ...rest) => {
      const text = source(name);
      return text === undefined ? base.getSourceFile(name, lang, ...rest) : ts.createSourceFile(name, text, lang);
    },
  };
  const program = ts.createProgram([...virtual.keys()], options, host);
  const out = new Map<string, string[]>([...texts.keys()].map((k) => [k, []]));
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const name = [...virtual.keys()].find((v) => v === d.file?.fileName);
    const key = name ? ([...texts.keys()][[...virtual.keys()].indexOf(name)] ?? '') : '(elsewhere)';
    out.set(key, [...(out.get(key) ?? []), ts.flattenDiagnosticMessageText(d.messageText, '\n')]);
  }
  return out;
}

describe('the ECS task definitions', () => {
  it('are Fargate and EC2 definitions of the server and the agent', () => {
    assert.deepEqual(files.sort(), ['agent-ec2.json', 'agent-fargate.json', 'server-ec2.json', 'server-fargate.json']);
  });

  it("type-check as the AWS SDK's RegisterTaskDefinitionCommandInput, and a wrong one does not", () => {
    const texts = new Map(files.map((f) => [f, readFileSync(join(DIR, f), 'utf8')]));
    const broken = JSON.parse(texts.get('agent-ec2.json') ?? '{}') as Record<string, unknown> & { containerDefinitions: Record<string, unknown>[] };
    broken.networkMode = 'mesh';
    (broken.containerDefinitions[0] ?? {}).privilegd = true;
    texts.set('broken', JSON.stringify(broken));
    const errors = typeErrors(texts);
    for (const f of files) assert.deepEqual(errors.get(f), [], f);
    assert.deepEqual(errors.get('(elsewhere)') ?? [], []);
    const wrong = (errors.get('broken') ?? []).join('\n');
    assert.match(wrong, /"mesh"/);
    assert.match(wrong, /privilegd/);
  });

  for (const f of files) {
    it(`${f}: what the types cannot check`, () => {
      const def = JSON.parse(readFileSync(join(DIR, f), 'utf8')) as RegisterTaskDefinitionCommandInput;
      const [c] = def.containerDefinitions ?? [];
      assert.ok(c);
      const fargate = def.requiresCompatibilities?.includes('FARGATE') ?? false;
      assert.equal(f.includes('fargate'), fargate);
      if (fargate) {
        assert.equal(def.networkMode, 'awsvpc');
        assert.ok(c.privileged !== true, 'Fargate allows no privileged containers');
        assert.ok(def.cpu && def.memory, 'Fargate needs task cpu and memory');
      }
      for (const s of c.secrets ?? []) assert.match(s.valueFrom ?? '', /^arn:aws:secretsmanager:/);
      if ((c.secrets ?? []).length > 0) assert.match(def.executionRoleArn ?? '', /^arn:aws:iam::/, 'the execution role reads the secrets');
      assert.ok(!(c.environment ?? []).some((e) => /TOKEN|DATABASE/.test(e.name ?? '')), 'no credential in plain environment');
      if (f.startsWith('agent')) {
        assert.deepEqual(c.portMappings ?? [], [], 'agents only dial out');
        assert.ok((c.secrets ?? []).some((s) => s.name === 'FERRY_JOIN_TOKEN'));
        assert.ok(
          c.mountPoints?.some((m) => m.containerPath === '/var/lib/ferry-agent'),
          'the credential survives a restart',
        );
        // The sandbox needs a privileged container, which only EC2 gives; on Fargate the agent says it runs the process executor.
        assert.deepEqual(c.command?.slice(-2), ['--executor', fargate ? 'process' : 'sandbox']);
        if (!fargate) assert.equal(c.privileged, true);
      } else {
        assert.deepEqual(
          c.portMappings?.map((p) => p.containerPort),
          [8443],
        );
        assert.match(JSON.stringify(c.healthCheck?.command), /\/healthz/);
        assert.equal(c.user, '10001:10001');
      }
    });
  }
});
