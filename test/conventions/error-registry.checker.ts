/**
 * Checks source files against the error-code registry (packages/protocol/src/errors.ts):
 * - every `FERRY_E_…` code a source names (raised, sent, returned or branched on) is registered,
 *   in `ErrorCodes` (server codes, with an HTTP status) or `ClientErrorCodes` (raised by clients);
 * - every registered code is named somewhere outside the registry (else it is dead);
 * - no error body built by hand disagrees with the registry's status: a `statusCode: N`
 *   beside the code, or a `reply.code(N)` / `reply.status(N)` the body is sent with.
 *
 * It reads sources with the TypeScript parser (no type checking), so comments and prose inside
 * longer strings are not mistaken for codes.
 */
import ts from 'typescript';

export const CODE_PATTERN = /^FERRY_E_[A-Z0-9_]+$/;

export interface Registry {
  /** Codes the server sends, with their HTTP status. */
  server: Readonly<Record<string, { readonly status: number }>>;
  /** Codes clients raise themselves; never in a server answer. */
  client: Readonly<Record<string, unknown>>;
}

export interface SourceFile {
  /** Path relative to the repository root, for messages. */
  path: string;
  text: string;
}

export interface Finding {
  path: string;
  line: number;
  code: string;
  problem: string;
}

export interface RegistryReport {
  /** Codes named in sources but registered nowhere. */
  unregistered: Finding[];
  /** Registered codes no source names. */
  unused: string[];
  /** Hand-built error bodies whose status disagrees with the registry. */
  statusMismatches: Finding[];
}

interface CodeUse {
  code: string;
  node: ts.Node;
}

/** The code a node names: a string literal `'FERRY_E_X'`, or a property access `Codes.FERRY_E_X`. */
function codeNamedBy(node: ts.Node): string | undefined {
  if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && CODE_PATTERN.test(node.text)) return node.text;
  if (ts.isPropertyAccessExpression(node) && CODE_PATTERN.test(node.name.text)) return node.name.text;
  if (ts.isElementAccessExpression(node) && ts.isStringLiteral(node.argumentExpression) && CODE_PATTERN.test(node.argumentExpression.text)) {
    return node.argumentExpression.text;
  }
  return undefined;
}

function propertyNamed(obj: ts.ObjectLiteralExpression, name: string): ts.PropertyAssignment | undefined {
  return obj.properties.find(
    (p): p is ts.PropertyAssignment => ts.isPropertyAssignment(p) && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) && p.name.text === name,
  );
}

function numberIn(node: ts.Expression | undefined): number | undefined {
  return node !== undefined && ts.isNumericLiteral(node) ? Number(node.text) : undefined;
}

/**
 * For an object literal passed to `x.send(obj)`, the statuses set earlier in the same chain:
 * `reply.code(409).type('application/json').send(obj)` gives [409].
 */
function chainedStatuses(obj: ts.ObjectLiteralExpression): number[] {
  const call = obj.parent;
  if (!ts.isCallExpression(call) || !call.arguments.includes(obj)) return [];
  const statuses: number[] = [];
  let expr: ts.Expression = call.expression;
  while (ts.isPropertyAccessExpression(expr) || ts.isCallExpression(expr)) {
    if (ts.isCallExpression(expr)) {
      const callee = expr.expression;
      const status = numberIn(expr.arguments[0]);
      if (ts.isPropertyAccessExpression(callee) && ['code', 'status'].includes(callee.name.text) && status !== undefined) statuses.push(status);
      expr = callee;
    } else {
      expr = expr.expression;
    }
  }
  return statuses;
}

/** Problems with a hand-built body `{ …, code: 'FERRY_E_X', … }`, if `use` is one. */
function bodyProblems(use: CodeUse, registry: Registry): string[] {
  const assignment = use.node.parent;
  if (!ts.isPropertyAssignment(assignment) || assignment.initializer !== use.node) return [];
  if (!(ts.isIdentifier(assignment.name) || ts.isStringLiteral(assignment.name)) || assignment.name.text !== 'code') return [];
  const obj = assignment.parent;
  if (!ts.isObjectLiteralExpression(obj)) return [];
  const statuses = [...new Set([numberIn(propertyNamed(obj, 'statusCode')?.initializer), ...chainedStatuses(obj)])].filter((s): s is number => s !== undefined);
  if (statuses.length === 0) return [];
  const registered = registry.server[use.code];
  if (!registered) {
    return Object.hasOwn(registry.client, use.code) ? [`${use.code} is a client-side code, but this body sends it with HTTP ${statuses.join('/')}`] : [];
  }
  return statuses
    .filter((s) => s !== registered.status)
    .map(
      (s) =>
        `an error body sends ${use.code} with HTTP ${s}, but the registry gives it ${registered.status}: throw new FerryError('${use.code}', …) (or the code that means ${s})`,
    );
}

function codeUses(file: SourceFile): { source: ts.SourceFile; uses: CodeUse[] } {
  const source = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const uses: CodeUse[] = [];
  const visit = (node: ts.Node): void => {
    const code = codeNamedBy(node);
    if (code !== undefined) uses.push({ code, node });
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { source, uses };
}

/** Checks `files` (the registry file itself left out by the caller) against `registry`. */
export function checkErrorRegistry(files: readonly SourceFile[], registry: Registry): RegistryReport {
  const report: RegistryReport = { unregistered: [], unused: [], statusMismatches: [] };
  const named = new Set<string>();
  for (const file of files) {
    const { source, uses } = codeUses(file);
    for (const use of uses) {
      named.add(use.code);
      const line = source.getLineAndCharacterOfPosition(use.node.getStart(source)).line + 1;
      if (!Object.hasOwn(registry.server, use.code) && !Object.hasOwn(registry.client, use.code)) {
        report.unregistered.push({
          path: file.path,
          line,
          code: use.code,
          problem: `${use.code} is not in ErrorCodes or ClientErrorCodes (packages/protocol/src/errors.ts)`,
        });
      }
      for (const problem of bodyProblems(use, registry)) report.statusMismatches.push({ path: file.path, line, code: use.code, problem });
    }
  }
  report.unused = [...Object.keys(registry.server), ...Object.keys(registry.client)].filter((code) => !named.has(code)).sort();
  return report;
}

export function describeFindings(findings: readonly Finding[]): string {
  return findings.map((f) => `${f.path}:${f.line}: ${f.problem}`).join('\n');
}
