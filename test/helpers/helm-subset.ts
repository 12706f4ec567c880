/**
 * A renderer for the subset of Helm's template language that deploy/helm/ferry uses, because
 * no `helm` binary can be had on the test machines (Debian does not package it, and it cannot
 * be built offline here). It is NOT Helm: it implements Go template actions (`{{ }}` with `-`
 * trimming, comments, if / else if / else, range over lists and maps with `$i, $v :=`, with,
 * define / include, variables, pipelines, parentheses) and these functions only: include,
 * quote, squote, toYaml, nindent, indent, default, required, printf (%s %d %v), b64enc, eq, ne,
 * not, and, or, empty, trunc, trimSuffix, lower, toString, int, gt, dict, hasKey. A template using anything
 * else fails to render, loudly; so the chart stays inside what this renders the way Helm
 * would. Its own tests (helm-subset.test.ts in test/e2e) pin that behaviour on small cases.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';

type Value = unknown;
interface Scope {
  dot: Value;
  vars: Map<string, Value>;
}
type Node =
  | { kind: 'text'; text: string }
  | { kind: 'out'; pipe: string }
  | { kind: 'set'; name: string; pipe: string }
  | { kind: 'if'; branches: { cond: string | null; body: Node[] }[] }
  | { kind: 'range'; key?: string; val?: string; pipe: string; body: Node[]; alt: Node[] }
  | { kind: 'with'; pipe: string; body: Node[]; alt: Node[] };

/** Text and actions, with `{{-` and `-}}` trimming applied to the neighbouring text. */
function lex(src: string): (string | { action: string })[] {
  const out: (string | { action: string })[] = [];
  let at = 0;
  let trimNext = false;
  while (at < src.length) {
    const open = src.indexOf('{{', at);
    let text = src.slice(at, open < 0 ? undefined : open);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (open < 0) {
      out.push(text);
      break;
    }
    const close = src.indexOf('}}', open);
    if (close < 0) throw new Error('unclosed {{');
    let action = src.slice(open + 2, close);
    if (action.startsWith('-')) {
      text = text.replace(/\s+$/, '');
      action = action.slice(1);
    }
    trimNext = action.endsWith('-');
    if (trimNext) action = action.slice(0, -1);
    out.push(text);
    action = action.trim();
    if (!(action.startsWith('/*') && action.endsWith('*/'))) out.push({ action });
    at = close + 2;
  }
  return out;
}

function parse(tokens: (string | { action: string })[], defines: Map<string, Node[]>): Node[] {
  let i = 0;
  const block = (enders: RegExp | null): { body: Node[]; end: string } => {
    const body: Node[] = [];
    while (i < tokens.length) {
      const t = tokens[i++];
      if (typeof t === 'string') {
        if (t) body.push({ kind: 'text', text: t });
        continue;
      }
      const a = t?.action ?? '';
      if (enders?.test(a)) return { body, end: a };
      let m: RegExpExecArray | null;
      if ((m = /^if\s+(.+)$/.exec(a))) {
        const branches: { cond: string | null; body: Node[] }[] = [];
        let cond: string | null = m[1] ?? '';
        for (;;) {
          const b = block(/^(else( if .+)?|end)$/);
          branches.push({ cond, body: b.body });
          if (b.end === 'end') break;
          cond = b.end === 'else' ? null : b.end.slice('else if '.length);
        }
        body.push({ kind: 'if', branches });
      } else if ((m = /^range\s+(?:(\$\w+)\s*,\s*(\$\w+)\s*:=\s*|(\$\w+)\s*:=\s*)?(.+)$/.exec(a))) {
        const b = block(/^(else|end)$/);
        const alt = b.end === 'else' ? block(/^end$/).body : [];
        body.push({ kind: 'range', key: m[1], val: m[2] ?? m[3], pipe: m[4] ?? '', body: b.body, alt });
      } else if ((m = /^with\s+(.+)$/.exec(a))) {
        const b = block(/^(else|end)$/);
        const alt = b.end === 'else' ? block(/^end$/).body : [];
        body.push({ kind: 'with', pipe: m[1] ?? '', body: b.body, alt });
      } else if ((m = /^define\s+"([^"]+)"$/.exec(a))) {
        defines.set(m[1] ?? '', block(/^end$/).body);
      } else if ((m = /^(\$\w+)\s*:?=\s*(.+)$/.exec(a))) {
        body.push({ kind: 'set', name: m[1] ?? '', pipe: m[2] ?? '' });
      } else if (/^(else|end)/.test(a)) {
        throw new Error(`unexpected {{ ${a} }}`);
      } else body.push({ kind: 'out', pipe: a });
    }
    if (enders) throw new Error(`missing {{ end }} (wanted ${enders.source})`);
    return { body, end: '' };
  };
  return block(null).body;
}

const truthy = (v: Value): boolean =>
  !(
    v === undefined ||
    v === null ||
    v === false ||
    v === 0 ||
    v === '' ||
    (Array.isArray(v) && v.length === 0) ||
    (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0)
  );

/** A value as template output; a map or list must go through toYaml (Go would print `map[...]`). */
function text(v: Value): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`cannot print ${JSON.stringify(v)} as text; use toYaml`);
}

function field(v: Value, path: string[]): Value {
  let cur = v;
  for (const p of path) cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, Value>)[p] : undefined;
  return cur;
}

function indentLines(n: number, s: string): string {
  return s
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');
}

export class HelmSubset {
  private readonly defines = new Map<string, Node[]>();
  private readonly templates: { name: string; nodes: Node[] }[] = [];
  private root: Value = {};

  constructor(private readonly chartDir: string) {
    const dir = join(chartDir, 'templates');
    for (const name of readdirSync(dir).sort()) {
      const nodes = parse(lex(readFileSync(join(dir, name), 'utf8')), this.defines);
      if (!name.startsWith('_') && /\.ya?ml$/.test(name)) this.templates.push({ name, nodes });
    }
  }

  /** Renders every template with the chart's values.yaml overlaid by `overrides`; returns the manifests. */
  render(overrides: Record<string, unknown> = {}, release = { Name: 'ferry', Namespace: 'ferry' }): Record<string, unknown>[] {
    const docs: Record<string, unknown>[] = [];
    for (const [name, text] of this.renderText(overrides, release)) {
      for (const doc of YAML.parseAllDocuments(text)) {
        if (doc.errors.length > 0) throw new Error(`${name}: ${doc.errors[0]?.message ?? ''}\n${text}`);
        const obj = doc.toJS() as Record<string, unknown> | null;
        if (obj) docs.push(obj);
      }
    }
    return docs;
  }

  /** Each template's text, as `helm template` would print it (without its `# Source:` lines). */
  renderText(overrides: Record<string, unknown> = {}, release = { Name: 'ferry', Namespace: 'ferry' }): Map<string, string> {
    const chart = YAML.parse(readFileSync(join(this.chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
    const values = merge(YAML.parse(readFileSync(join(this.chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>, overrides);
    this.root = { Values: values, Release: release, Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion } };
    return new Map(this.templates.map((t) => [t.name, this.run(t.nodes, { dot: this.root, vars: new Map([['$', this.root]]) })]));
  }

  private run(nodes: Node[], scope: Scope): string {
    let out = '';
    for (const n of nodes) {
      if (n.kind === 'text') out += n.text;
      else if (n.kind === 'out') {
        const v = this.pipe(n.pipe, scope);
        out += text(v);
      } else if (n.kind === 'set') scope.vars.set(n.name, this.pipe(n.pipe, scope));
      else if (n.kind === 'if') {
        const branch = n.branches.find((b) => b.cond === null || truthy(this.pipe(b.cond, scope)));
        if (branch) out += this.run(branch.body, { dot: scope.dot, vars: new Map(scope.vars) });
      } else if (n.kind === 'with') {
        const v = this.pipe(n.pipe, scope);
        out += truthy(v) ? this.run(n.body, { dot: v, vars: new Map(scope.vars) }) : this.run(n.alt, scope);
      } else {
        const v = this.pipe(n.pipe, scope);
        const entries: [Value, Value][] = Array.isArray(v)
          ? v.map((x, i) => [i, x])
          : v && typeof v === 'object'
            ? Object.keys(v)
                .sort()
                .map((k) => [k, (v as Record<string, Value>)[k]])
            : [];
        if (entries.length === 0) out += this.run(n.alt, scope);
        for (const [k, x] of entries) {
          const vars = new Map(scope.vars);
          if (n.key) vars.set(n.key, k);
          if (n.val) vars.set(n.val, x);
          out += this.run(n.body, { dot: x, vars });
        }
      }
    }
    return out;
  }

  /** A pipeline: commands separated by `|`, each one's result the last argument of the next. */
  private pipe(src: string, scope: Scope): Value {
    const words = tokenize(src);
    let value: Value = undefined;
    let first = true;
    for (const cmd of splitOn(words, '|')) {
      value = this.command(cmd, scope, first ? [] : [value]);
      first = false;
    }
    return value;
  }

  private command(words: string[], scope: Scope, piped: Value[]): Value {
    const [head, ...rest] = words;
    if (head === undefined) throw new Error('empty command');
    if (/^[a-zA-Z]\w*$/.test(head) && !['true', 'false', 'nil'].includes(head)) {
      return this.call(head, [...rest.map((w) => this.term(w, scope)), ...piped]);
    }
    if (rest.length > 0 || piped.length > 0) throw new Error(`cannot call ${head}`);
    return this.term(head, scope);
  }

  private term(w: string, scope: Scope): Value {
    if (w.startsWith('(')) return this.pipe(w.slice(1, -1), scope);
    if (w.startsWith('"')) return JSON.parse(w) as string;
    if (/^-?\d+(\.\d+)?$/.test(w)) return Number(w);
    if (w === 'true' || w === 'false') return w === 'true';
    if (w === 'nil') return null;
    if (w === '.') return scope.dot;
    if (w.startsWith('.')) return field(scope.dot, w.slice(1).split('.'));
    if (w.startsWith('$')) {
      const [name = '', ...path] = w.split('.');
      if (!scope.vars.has(name)) throw new Error(`undefined variable ${name}`);
      return field(scope.vars.get(name), path);
    }
    throw new Error(`cannot read ${w}`);
  }

  private call(fn: string, args: Value[]): Value {
    const s = text;
    switch (fn) {
      case 'include': {
        const body = this.defines.get(s(args[0]));
        if (!body) throw new Error(`no template ${s(args[0])}`);
        return this.run(body, { dot: args[1], vars: new Map([['$', this.root]]) });
      }
      case 'quote':
        return JSON.stringify(s(args[0]));
      case 'squote':
        return `'${s(args[0])}'`;
      case 'toYaml':
        return args[0] === undefined || args[0] === null ? 'null' : YAML.stringify(args[0]).replace(/\n$/, '');
      case 'nindent':
        return '\n' + indentLines(Number(args[0]), s(args[1]));
      case 'indent':
        return indentLines(Number(args[0]), s(args[1]));
      case 'default':
        return truthy(args[1]) ? args[1] : args[0];
      case 'required':
        if (!truthy(args[1])) throw new Error(s(args[0]));
        return args[1];
      case 'printf': {
        let i = 1;
        return s(args[0]).replace(/%[sdv]/g, () => s(args[i++]));
      }
      case 'b64enc':
        return Buffer.from(s(args[0])).toString('base64');
      case 'eq':
        return args[0] === args[1];
      case 'ne':
        return args[0] !== args[1];
      case 'not':
        return !truthy(args[0]);
      case 'and':
        return args.every(truthy) ? args.at(-1) : args.find((a) => !truthy(a));
      case 'or':
        return args.find(truthy) ?? args.at(-1);
      case 'empty':
        return !truthy(args[0]);
      case 'trunc':
        return s(args[1]).slice(0, Number(args[0]));
      case 'trimSuffix':
        return s(args[1]).endsWith(s(args[0])) ? s(args[1]).slice(0, -s(args[0]).length || undefined) : s(args[1]);
      case 'lower':
        return s(args[0]).toLowerCase();
      case 'toString':
        return s(args[0]);
      case 'int':
        return Math.trunc(Number(args[0]));
      case 'gt':
        return Number(args[0]) > Number(args[1]);
      case 'dict': {
        const d: Record<string, Value> = {};
        for (let i = 0; i + 1 < args.length; i += 2) d[s(args[i])] = args[i + 1];
        return d;
      }
      case 'hasKey':
        return args[0] !== null && typeof args[0] === 'object' && s(args[1]) in args[0];
      default:
        throw new Error(`function ${fn} is outside the subset this renderer knows`);
    }
  }
}

/** Words of an action: strings, parenthesized groups and `|` kept whole. */
function tokenize(src: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] ?? '';
    if (/\s/.test(c)) i++;
    else if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      out.push(src.slice(i, j + 1));
      i = j + 1;
    } else if (c === '(') {
      let depth = 0;
      let j = i;
      for (; j < src.length; j++) {
        if (src[j] === '(') depth++;
        else if (src[j] === ')' && --depth === 0) break;
      }
      out.push(src.slice(i, j + 1));
      i = j + 1;
    } else if (c === '|') {
      out.push('|');
      i++;
    } else {
      let j = i;
      while (j < src.length && !/[\s|()]/.test(src[j] ?? '')) j++;
      out.push(src.slice(i, j));
      i = j;
    }
  }
  return out;
}

function splitOn(words: string[], sep: string): string[][] {
  const out: string[][] = [[]];
  for (const w of words)
    if (w === sep) out.push([]);
    else out.at(-1)?.push(w);
  return out;
}

/** Helm's values merge: maps merge deeply, anything else replaces. */
function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}
