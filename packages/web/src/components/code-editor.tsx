/**
 * A code editor (CodeMirror 6) with highlighting for the target's language: shell for shell
 * and Kubernetes/AWS targets (their scripts are shell), SQL (PostgreSQL or MySQL dialect) for
 * database targets, Python, and JavaScript-ish plain text for Node. Only the Run page imports
 * this file, so CodeMirror is in that page's chunk, not in the first load.
 *
 * Keyboard: Tab indents, as in any editor; Escape then Tab (or Ctrl-M to toggle) moves focus
 * out of the editor, so it is no keyboard trap.
 *
 * CodeMirror adds its styles in a <style> element; the page's Content-Security-Policy allows
 * that one only with the nonce the server put in this page's CSP and in its
 * `<meta name="csp-nonce">` (server/src/web/static.ts). (A shadow root would avoid the element,
 * but Chromium's selection handling in shadow roots hangs CodeMirror on typing.)
 */
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { python } from '@codemirror/lang-python';
import { MySQL, PostgreSQL, sql } from '@codemirror/lang-sql';
import { HighlightStyle, StreamLanguage, bracketMatching, indentOnInput, syntaxHighlighting } from '@codemirror/language';
import { shell } from '@codemirror/legacy-modes/mode/shell';
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import { EditorView, drawSelection, highlightActiveLine, keymap, lineNumbers, placeholder } from '@codemirror/view';
import { tags } from '@lezer/highlight';
import { useEffect, useRef } from 'preact/hooks';

export type EditorLanguage = 'shell' | 'python' | 'postgres' | 'mysql' | 'plain';

/** The language a target type's scripts are written in. */
export function languageFor(targetType: string): EditorLanguage {
  if (targetType.startsWith('postgres')) return 'postgres';
  if (targetType.startsWith('mysql')) return 'mysql';
  if (targetType === 'python') return 'python';
  if (targetType === 'node') return 'plain';
  return 'shell';
}

function languageExtension(lang: EditorLanguage): Extension {
  switch (lang) {
    case 'shell':
      return StreamLanguage.define(shell);
    case 'python':
      return python();
    case 'postgres':
      return sql({ dialect: PostgreSQL });
    case 'mysql':
      return sql({ dialect: MySQL });
    case 'plain':
      return [];
  }
}

/** Colours with at least 4.5:1 contrast on white (WCAG AA). */
const highlight = HighlightStyle.define([
  { tag: tags.keyword, color: '#8250df', fontWeight: '600' },
  { tag: [tags.string, tags.special(tags.string)], color: '#0a3069' },
  { tag: tags.comment, color: '#57606a', fontStyle: 'italic' },
  { tag: [tags.number, tags.bool, tags.null], color: '#0550ae' },
  { tag: [tags.variableName, tags.special(tags.variableName)], color: '#953800' },
  { tag: [tags.function(tags.variableName), tags.definition(tags.variableName)], color: '#6639ba' },
  { tag: [tags.operator, tags.punctuation], color: '#24292f' },
  { tag: tags.typeName, color: '#116329' },
]);

const theme = EditorView.theme({
  '&': { border: '1px solid #8c959f', borderRadius: '4px', fontSize: '13px', minHeight: '12em' },
  '&.cm-focused': { outline: '3px solid #0969da', outlineOffset: '2px' },
  '.cm-content': { fontFamily: "ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace", minHeight: '12em' },
  '.cm-gutters': { background: '#f6f8fa', color: '#57606a', borderRight: '1px solid #d0d7de' },
  '.cm-scroller': { maxHeight: '60vh' },
});

/** Uncontrolled: `initial` is the text it starts with; every change is reported through `onChange`. */
export function CodeEditor({
  initial,
  onChange,
  language,
  label,
  id,
}: {
  initial: string;
  onChange: (text: string) => void;
  language: EditorLanguage;
  /** The accessible name of the editor (it has no <label>: it is not an <input>); read once. */
  label: string;
  id: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView>();
  const lang = useRef(new Compartment());
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    if (!host.current) return;
    const v = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: initial,
        extensions: [
          lineNumbers(),
          history(),
          drawSelection(),
          indentOnInput(),
          bracketMatching(),
          highlightActiveLine(),
          syntaxHighlighting(highlight),
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          placeholder('Your script…'),
          lang.current.of(languageExtension(language)),
          theme,
          EditorView.cspNonce.of(document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? ''),
          EditorView.contentAttributes.of({ 'aria-label': label, id, 'aria-multiline': 'true' }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) changed.current(u.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = v;
    return () => v.destroy();
  }, []);

  useEffect(() => {
    view.current?.dispatch({ effects: lang.current.reconfigure(languageExtension(language)) });
  }, [language]);

  return <div ref={host} class="editor" data-language={language} />;
}
