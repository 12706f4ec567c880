/**
 * Small pieces the administration pages share: loading what a page shows, an error notice that
 * says what the server said (message and stable code), labelled fields, a confirmation step for
 * destructive buttons, and a box of text to copy (tokens, URLs, commands).
 */
import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks';
import { onLinkClick } from '../lib/router';
import './admin.css';

/** What went wrong, as a person reads it: the server's message, and its code when there is one. */
export interface Problem {
  message: string;
  code?: string;
  status?: number;
}

export function problemOf(err: unknown): Problem {
  if (err instanceof Error) {
    const { code, status } = err as Error & { code?: unknown; status?: unknown };
    return { message: err.message, code: typeof code === 'string' ? code : undefined, status: typeof status === 'number' ? status : undefined };
  }
  return { message: String(err) };
}

export function ErrorNotice({ problem, title }: { problem: Problem | null | undefined; title?: string }): JSX.Element | null {
  if (!problem) return null;
  return (
    <div class="admin-error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      <span class="admin-error-message">{problem.message}</span>
      {problem.code ? <code class="admin-error-code">{problem.code}</code> : null}
    </div>
  );
}

interface Loaded<T> {
  data: T | undefined;
  problem: Problem | null;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` on mount and whenever `deps` change or `reload` is called; the last answer wins. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [loading, setLoading] = useState(true);
  const [round, setRound] = useState(0);
  const latest = useRef(0);
  useEffect(() => {
    const mine = ++latest.current;
    setLoading(true);
    load().then(
      (value) => {
        if (mine !== latest.current) return;
        setData(value);
        setProblem(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (mine !== latest.current) return;
        setProblem(problemOf(err));
        setLoading(false);
      },
    );
  }, [...deps, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { data, problem, loading, reload };
}

/** An action behind a button: runs once at a time, remembers the last problem. */
export function useAction<A extends unknown[], T>(
  run: (...args: A) => Promise<T>,
): {
  busy: boolean;
  problem: Problem | null;
  act: (...args: A) => Promise<T | undefined>;
  clear: () => void;
} {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const act = async (...args: A): Promise<T | undefined> => {
    setBusy(true);
    setProblem(null);
    try {
      return await run(...args);
    } catch (err) {
      setProblem(problemOf(err));
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, problem, act, clear: () => setProblem(null) };
}

export function Field({
  label,
  hint,
  children,
}: {
  label: string;
  hint?: string;
  children: (id: string, hintId: string | undefined) => ComponentChildren;
}): JSX.Element {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  return (
    <div class="admin-field">
      <label for={id}>{label}</label>
      {children(id, hintId)}
      {hint ? (
        <small id={hintId} class="admin-hint">
          {hint}
        </small>
      ) : null}
    </div>
  );
}

/** A button that asks once more before doing something that cannot be undone. */
export function ConfirmButton({
  label,
  confirmLabel,
  question,
  onConfirm,
  disabled,
}: {
  label: string;
  confirmLabel: string;
  question: string;
  onConfirm: () => void | Promise<void>;
  disabled?: boolean;
}): JSX.Element {
  const [asking, setAsking] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" class="admin-danger" disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span class="admin-confirm" role="group" aria-label={question}>
      <span>{question}</span>{' '}
      <button
        ref={confirmRef}
        type="button"
        class="admin-danger"
        onClick={() => {
          setAsking(false);
          void onConfirm();
        }}
      >
        {confirmLabel}
      </button>{' '}
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

/** Text to copy whole: shown in a read-only field (selectable) with a Copy button. */
export function CopyBox({ label, value, multiline }: { label: string; value: string; multiline?: boolean }): JSX.Element {
  const id = useId();
  const [copied, setCopied] = useState(false);
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied(true);
    } catch {
      // No clipboard permission (or not a secure context): select the text for a manual copy.
      const field = document.getElementById(id);
      if (field instanceof HTMLInputElement || field instanceof HTMLTextAreaElement) field.select();
    }
  };
  return (
    <div class="admin-copy">
      <label for={id}>{label}</label>
      <div class="admin-copy-row">
        {multiline ? (
          <textarea id={id} readOnly rows={3} value={value} onFocus={(e) => e.currentTarget.select()} />
        ) : (
          <input id={id} type="text" readOnly value={value} onFocus={(e) => e.currentTarget.select()} />
        )}
        <button type="button" onClick={() => void copy()} aria-label={`Copy ${label}`}>
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
    </div>
  );
}

/** "3 minutes ago", with the exact time in a title (and for screen readers, in the text of <time>). */
export function Ago({ at }: { at: string | null }): JSX.Element {
  if (!at) return <span>never</span>;
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000));
  const text =
    seconds < 60
      ? `${seconds}s ago`
      : seconds < 3600
        ? `${Math.round(seconds / 60)} min ago`
        : seconds < 86400
          ? `${Math.round(seconds / 3600)} h ago`
          : `${Math.round(seconds / 86400)} d ago`;
  return (
    <time dateTime={at} title={at}>
      {text}
    </time>
  );
}

export function Empty({ children }: { children: ComponentChildren }): JSX.Element {
  return <p class="admin-empty">{children}</p>;
}

export function Loading({ what }: { what: string }): JSX.Element {
  return (
    <p class="admin-loading" role="status">
      Loading {what}…
    </p>
  );
}

/** A wide table's frame: scrolls sideways on a narrow screen, and can be scrolled by keyboard (it takes focus). */
export function TableWrap({ label, children }: { label: string; children: ComponentChildren }): JSX.Element {
  return (
    <div class="admin-table-wrap" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}

/** A link inside the UI: followed without a reload (../lib/router). */
export function Link({ href, children, label }: { href: string; children: ComponentChildren; label?: string }): JSX.Element {
  return (
    <a href={href} onClick={onLinkClick} aria-label={label}>
      {children}
    </a>
  );
}

/** What a non-admin sees instead of an admin-only page or form. */
export function AdminOnly({ what }: { what: string }): JSX.Element {
  return <p class="admin-hint">{what} is for admins of the organization; ask one of them.</p>;
}
