/**
 * The Helm chart (deploy/helm/ferry), rendered with default values and with PostgreSQL values,
 * every manifest validated offline against the Kubernetes API schemas (kubernetes-models:
 * types, required fields, formats; like the API server's own schemas, unknown fields are not
 * flagged). No `helm` binary exists on the test machines, so the chart is rendered by
 * test/helpers/helm-subset.ts, a renderer for the subset of Helm's language the chart uses,
 * pinned by its own tests below. It is not Helm: `helm template` was not run.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { Service } from 'kubernetes-models/v1/Service';
import YAML from 'yaml';
import { HelmSubset } from '../helpers/helm-subset.js';
import { ROOT, tempDir } from '../helpers/ferry.js';

const CHART = join(ROOT, 'deploy/helm/ferry');
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'v1/Service': Service,
};

type Manifest = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } };
type Container = { name: string; env?: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[] } & Record<
  string,
  unknown
>;

function validateAll(docs: Record<string, unknown>[]): Manifest[] {
  return docs.map((doc) => {
    const m = doc as Manifest;
    const Model = MODELS[`${m.apiVersion}/${m.kind}`];
    assert.ok(Model, `no schema for ${m.apiVersion} ${m.kind}`);
    assert.doesNotThrow(() => new Model(doc as never).validate(), `${m.kind} ${m.metadata.name}`);
    assert.match(m.metadata.name, /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a DNS-1123 label');
    return m;
  });
}

const find = (docs: Manifest[], kind: string, name: string): Manifest => {
  const m = docs.find((d) => d.kind === kind && d.metadata.name === name);
  assert.ok(m, `${kind} ${name} in ${docs.map((d) => `${d.kind}/${d.metadata.name}`).join(', ')}`);
  return m;
};
const container = (m: Manifest): Container =>
  (m as unknown as { spec: { template: { spec: { containers: Container[] } } } }).spec.template.spec.containers[0] as Container;

describe('the subset renderer', () => {
  const render = (files: Record<string, string>, values: Record<string, unknown> = {}): string => {
    const dir = tempDir('chart');
    mkdirSync(join(dir, 'templates'));
    writeFileSync(join(dir, 'Chart.yaml'), 'name: t\nversion: 1.0.0\nappVersion: "1"\n');
    writeFileSync(join(dir, 'values.yaml'), YAML.stringify(values));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'templates', name), text);
    return [...new HelmSubset(dir).renderText().values()].join('');
  };

  it('trims, branches, ranges over maps in key order, includes with nindent, as Helm does', () => {
    const out = render(
      {
        '_h.tpl': '{{- define "l" -}}\na: {{ .x | quote }}\nb: 2\n{{- end }}',
        't.yaml':
          'k:\n  {{- include "l" (dict "x" 1) | nindent 2 }}\n{{- if .Values.on }}\nf: A{{ else }}\nf: B{{ end }}\nm:\n{{- range $k, $v := .Values.m }}\n  {{ $k }}: {{ $v | default "d" }}\n{{- end }}\n',
      },
      { on: false, m: { z: 1, a: '' } },
    );
    assert.equal(out, 'k:\n  a: "1"\n  b: 2\nf: B\nm:\n  a: d\n  z: 1\n');
  });

  it('refuses what it does not know, and says what is required', () => {
    assert.throws(() => render({ 't.yaml': 'a: {{ .Values.x | sha256sum }}\n' }), /outside the subset/);
    assert.throws(() => render({ 't.yaml': 'a: {{ required "x is required" .Values.x }}\n' }), /x is required/);
    assert.throws(() => render({ 't.yaml': '{{ if .Values.x }}\na: 1\n' }), /missing \{\{ end \}\}/);
  });
});

describe('the Helm chart', () => {
  const chart = new HelmSubset(CHART);

  it('with default values: a SQLite server on a volume, probes, network policies; all valid', () => {
    const docs = validateAll(chart.render());
    assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort(), [
      'NetworkPolicy/ferry-agents',
      'NetworkPolicy/ferry-server',
      'Service/ferry-server',
      'StatefulSet/ferry-server',
    ]);
    const server = find(docs, 'StatefulSet', 'ferry-server') as unknown as {
      spec: { replicas: number; volumeClaimTemplates: unknown[]; template: { spec: { securityContext: { runAsNonRoot: boolean } } } };
    };
    assert.equal(server.spec.replicas, 1);
    assert.equal(server.spec.volumeClaimTemplates.length, 1);
    assert.equal(server.spec.template.spec.securityContext.runAsNonRoot, true);
    const c = container(docs.find((d) => d.kind === 'StatefulSet') as Manifest) as unknown as {
      livenessProbe: { httpGet: { path: string; scheme: string } };
      readinessProbe: { httpGet: { path: string; scheme: string } };
      env: { name: string; value?: string }[];
    };
    assert.deepEqual(c.livenessProbe.httpGet.path, '/healthz');
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'https', scheme: 'HTTPS' });
    assert.equal(c.env.find((e) => e.name === 'FERRY_PUBLIC_URL')?.value, 'https://ferry-server.ferry.svc:8443');
    const agentsPolicy = find(docs, 'NetworkPolicy', 'ferry-agents') as unknown as { spec: { ingress: unknown[]; policyTypes: string[] } };
    assert.deepEqual(agentsPolicy.spec, { ...agentsPolicy.spec, ingress: [], policyTypes: ['Ingress'] });
  });

  it('with PostgreSQL values: replicas from a Deployment, the URL and join tokens from Secrets, an agent per target; all valid', () => {
    const values = YAML.parse(readFileSync(join(CHART, 'values-postgresql.yaml'), 'utf8')) as Record<string, unknown>;
    const docs = validateAll(chart.render(values));
    const server = find(docs, 'Deployment', 'ferry-server') as unknown as { spec: { replicas: number } };
    assert.equal(server.spec.replicas, 3);
    const env = container(server as unknown as Manifest).env ?? [];
    assert.deepEqual(env.find((e) => e.name === 'FERRY_DATABASE')?.valueFrom, { secretKeyRef: { name: 'ferry-database', key: 'url' } });
    for (const [agent, secret] of [
      ['db-prod', 'ferry-agent-db-prod'],
      ['web', 'ferry-agent-web'],
      ['hosted', 'ferry-hosted-agent'],
    ]) {
      const c = container(find(docs, 'StatefulSet', `ferry-agent-${agent}`));
      assert.deepEqual(c.env?.find((e) => e.name === 'FERRY_JOIN_TOKEN')?.valueFrom, { secretKeyRef: { name: secret, key: 'token' } });
      assert.ok(!JSON.stringify(c).includes('ferryjoin1.'), 'no token value in the manifest');
    }
    assert.equal(docs.filter((d) => d.kind === 'StatefulSet').length, 3);
    // Replicas share one CA (agents pin it): the TLS material comes from a Secret.
    assert.equal(env.find((e) => e.name === 'FERRY_TLS_CA')?.value, '/etc/ferry/tls/ca.crt');
    assert.match(JSON.stringify(server), /"secret":\{"secretName":"ferry-tls"\}/);
    assert.throws(() => chart.render({ ...values, server: { replicas: 3, tlsSecret: '' } }), /server\.tlsSecret is required with several replicas/);
  });

  it('refuses an agent without its join-token Secret', () => {
    assert.throws(() => chart.render({ agents: [{ name: 'x' }] }), /agents\[\]\.joinTokenSecret is required/);
  });

  it('a manifest that breaks the schema is caught (the validation can fail)', () => {
    const [doc] = chart.render().filter((d) => d.kind === 'StatefulSet');
    const broken = structuredClone(doc) as { spec: { replicas: unknown } };
    broken.spec.replicas = 'three';
    assert.throws(() => new StatefulSet(broken as never).validate(), /replicas/);
  });
});
