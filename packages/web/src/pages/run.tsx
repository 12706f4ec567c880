/**
 * Run a task: pick a target, then either write a script (CodeMirror, highlighted for the
 * target's language: shell, SQL or Python) or pick a runbook, whose parameters become a form
 * (text, number, yes/no, or a choice among its allowed values). Submitting opens the task's page.
 */
import type { RouteResult, RunbookInfo, RunbookParam, Target } from '@ferry/protocol';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { CodeEditor, languageFor } from '../components/code-editor';
import { Field, Notice } from '../components/form';
import { api, errorText, Routes } from '../lib/api';
import { navigate } from '../lib/router';
import type { PageProps } from '../routes';

type Mode = 'script' | 'runbook';

function ParamInput({ param, value, onChange }: { param: RunbookParam; value: string; onChange: (v: string) => void }) {
  const id = `param-${param.name}`;
  const label = `${param.name}${param.required ? ' (required)' : ''}`;
  const hint = param.description ?? undefined;
  if (param.allowed) {
    return (
      <div class="field">
        <label for={id}>{label}</label>
        <select id={id} value={value} required={param.required} onChange={(e) => onChange(e.currentTarget.value)}>
          {!param.required && <option value="">(default)</option>}
          {param.allowed.map((a) => (
            <option key={a} value={a}>
              {a}
            </option>
          ))}
        </select>
        {hint && <small class="hint">{hint}</small>}
      </div>
    );
  }
  if (param.type === 'bool') {
    return (
      <div class="field">
        <label for={id}>{label}</label>
        <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
          {!param.required && <option value="">(default{param.default ? `: ${param.default}` : ''})</option>}
          <option value="true">yes</option>
          <option value="false">no</option>
        </select>
        {hint && <small class="hint">{hint}</small>}
      </div>
    );
  }
  return (
    <Field
      label={label}
      id={id}
      type={param.type === 'int' ? 'number' : 'text'}
      step={param.type === 'int' ? 1 : undefined}
      required={param.required}
      pattern={param.pattern ?? undefined}
      placeholder={param.default ?? undefined}
      hint={hint}
      value={value}
      onInput={(e) => onChange(e.currentTarget.value)}
    />
  );
}

export default function RunPage({ query }: PageProps) {
  const [targets, setTargets] = useState<Target[]>([]);
  const [runbooks, setRunbooks] = useState<RunbookInfo[]>([]);
  const [target, setTarget] = useState(query.get('target') ?? '');
  const [mode, setMode] = useState<Mode>('script');
  const [script, setScript] = useState('');
  const [runbookName, setRunbookName] = useState('');
  const [params, setParams] = useState<Record<string, string>>({});
  const [timeout, setTimeoutText] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api
      .call(Routes.listTargets)
      .then((r) => {
        setTargets(r.targets);
        setTarget((t) => t || r.targets[0]?.name || '');
      })
      .catch((err: unknown) => setError(errorText(err)));
    // Runbooks are optional: a viewer or an organization without sources has none.
    api
      .call(Routes.listRunbooks)
      .then((r) => setRunbooks(r.runbooks))
      .catch(() => setRunbooks([]));
  }, []);

  const chosen = targets.find((t) => t.name === target);
  const runbook = runbooks.find((r) => r.name === runbookName);
  const language = useMemo(() => languageFor(chosen?.type ?? runbook?.targetType ?? 'shell'), [chosen?.type, runbook?.targetType]);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError('');
    const timeoutSeconds = timeout ? Number(timeout) : undefined;
    try {
      let task: RouteResult<typeof Routes.createTask>;
      if (mode === 'runbook') {
        if (!runbook) throw new Error('Pick a runbook.');
        const given = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== ''));
        task = await api.call(Routes.runRunbook, { params: { name: runbook.name }, body: { target: target || undefined, params: given, timeoutSeconds } });
      } else {
        if (!script.trim()) throw new Error('Write a script to run.');
        task = await api.call(Routes.createTask, { body: { target, script, timeoutSeconds } });
      }
      navigate(`/ui/tasks/${encodeURIComponent(task.id)}`);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <>
      <h1>Run a task</h1>
      {error && <Notice kind="error">{error}</Notice>}
      <form onSubmit={(e) => void submit(e)} aria-label="Run a task">
        <div class="filters">
          <div>
            <label for="target">Target</label>
            <select id="target" value={target} onChange={(e) => setTarget(e.currentTarget.value)} required>
              {targets.length === 0 && <option value="">(no targets yet)</option>}
              {targets.map((t) => (
                <option key={t.id} value={t.name}>
                  {t.name} ({t.type})
                </option>
              ))}
            </select>
          </div>
          <fieldset class="modes">
            <legend>What to run</legend>
            <label>
              <input type="radio" name="mode" value="script" checked={mode === 'script'} onChange={() => setMode('script')} /> A script
            </label>
            <label>
              <input type="radio" name="mode" value="runbook" checked={mode === 'runbook'} onChange={() => setMode('runbook')} /> A runbook
            </label>
          </fieldset>
          <div>
            <label for="timeout">Timeout (seconds)</label>
            <input id="timeout" type="number" min={1} step={1} inputMode="numeric" value={timeout} onInput={(e) => setTimeoutText(e.currentTarget.value)} />
          </div>
        </div>
        {mode === 'script' ? (
          <div class="field">
            <span class="label" id="script-label">
              Script ({language === 'postgres' || language === 'mysql' ? 'SQL' : language})
            </span>
            <CodeEditor id="script" label="Script" initial={script} onChange={setScript} language={language} />
            <small class="hint">Tab indents; press Escape, then Tab, to leave the editor.</small>
          </div>
        ) : (
          <div class="runbook">
            <div class="field">
              <label for="runbook">Runbook</label>
              <select
                id="runbook"
                value={runbookName}
                onChange={(e) => {
                  const name = e.currentTarget.value;
                  setRunbookName(name);
                  const rb = runbooks.find((r) => r.name === name);
                  setParams(Object.fromEntries((rb?.params ?? []).map((p) => [p.name, p.default ?? ''])));
                  if (rb?.defaultTarget) setTarget(rb.defaultTarget);
                }}
              >
                <option value="">{runbooks.length ? '(pick one)' : '(no runbooks: an admin adds a source)'}</option>
                {runbooks.map((r) => (
                  <option key={r.name} value={r.name}>
                    {r.name}
                  </option>
                ))}
              </select>
            </div>
            {runbook && (
              <>
                {runbook.description && <p>{runbook.description}</p>}
                {runbook.params.map((p) => (
                  <ParamInput key={p.name} param={p} value={params[p.name] ?? ''} onChange={(v) => setParams((old) => ({ ...old, [p.name]: v }))} />
                ))}
                <details>
                  <summary>Its script</summary>
                  <pre class="script">{runbook.script}</pre>
                </details>
              </>
            )}
          </div>
        )}
        <div class="actions">
          <button type="submit" disabled={busy || !target}>
            Run
          </button>
        </div>
      </form>
    </>
  );
}
