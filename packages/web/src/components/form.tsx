/** Small form pieces with their labels attached, so every control is named for assistive technology. */
import type { ComponentChildren, JSX } from 'preact';

type InputProps = JSX.InputHTMLAttributes<HTMLInputElement> & { label: string; id: string; hint?: string };

export function Field({ label, id, hint, ...input }: InputProps) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} aria-describedby={hint ? `${id}-hint` : undefined} {...input} />
      {hint && (
        <small id={`${id}-hint`} class="hint">
          {hint}
        </small>
      )}
    </div>
  );
}

/** A message region: errors are announced at once (alert), other news politely (status). */
export function Notice({ kind, children }: { kind: 'error' | 'info'; children: ComponentChildren }) {
  return (
    <p class={`notice ${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {children}
    </p>
  );
}
