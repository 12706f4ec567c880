/**
 * The output of a task, drawn virtually: only the lines in view (and a few around them) are in
 * the page, each a fixed 18 px high, so 200,000 lines scroll as smoothly as 20. While the view
 * is scrolled to the end it follows new output; scrolling up stops that, "Follow" resumes it.
 * Keyboard: the log is focusable, so arrows, Page Up/Down, Home and End scroll it.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { Streams } from '@ferry/protocol';
import { parseLine, styleClasses } from '../lib/ansi';
import type { OutputLog } from '../lib/output-log';

const LINE_PX = 18;
const OVERSCAN = 30;

function Line({ log, i }: { log: OutputLog; i: number }) {
  const { text, stream, style } = log.line(i);
  const { segments } = parseLine(text, style);
  const cls = stream === Streams.stderr ? 'line err' : stream === Streams.system ? 'line sys' : 'line';
  return (
    <div class={cls}>
      {segments.length === 0
        ? '\u200b'
        : segments.map((seg, k) => {
            const { className, color, background } = styleClasses(seg.style);
            return className || color || background ? (
              <span key={k} class={className || undefined} style={color || background ? { color, background } : undefined}>
                {seg.text}
              </span>
            ) : (
              seg.text
            );
          })}
    </div>
  );
}

export function OutputView({ log, version, label }: { log: OutputLog; version: number; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(480);
  const [follow, setFollow] = useState(true);
  const total = log.count;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setHeight(el.clientHeight));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  // Following: keep the end in view as lines arrive.
  useLayoutEffect(() => {
    const el = box.current;
    if (el && follow) {
      el.scrollTop = el.scrollHeight;
      setScrollTop(el.scrollTop);
    }
  }, [version, follow]);

  const onScroll = (): void => {
    const el = box.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - LINE_PX;
    if (atEnd !== follow) setFollow(atEnd);
  };

  const first = Math.max(0, Math.floor(scrollTop / LINE_PX) - OVERSCAN);
  const last = Math.min(total, Math.ceil((scrollTop + height) / LINE_PX) + OVERSCAN);
  const shown: number[] = [];
  for (let i = first; i < last; i++) shown.push(i);

  return (
    <div class="output-wrap">
      <div class="output-bar">
        <span>
          {total.toLocaleString()} line{total === 1 ? '' : 's'}, {log.bytes.toLocaleString()} bytes
        </span>
        {!follow && (
          <button type="button" class="secondary small" onClick={() => setFollow(true)}>
            Follow new output
          </button>
        )}
      </div>
      <div ref={box} class="output" role="log" aria-label={label} tabIndex={0} onScroll={onScroll}>
        <div class="output-space" style={{ height: `${total * LINE_PX}px` }}>
          <div class="output-lines" style={{ transform: `translateY(${first * LINE_PX}px)` }}>
            {shown.map((i) => (
              <Line key={i} log={log} i={i} />
            ))}
          </div>
        </div>
      </div>
    </div>
  );
}
