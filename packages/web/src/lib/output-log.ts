/**
 * A task's output as lines, built incrementally from output frames as they arrive: each
 * stream's bytes are decoded as UTF-8 across frame boundaries (invalid bytes show as U+FFFD),
 * split into lines, and each line remembers its stream and the ANSI style in force at its start
 * (so any line can be drawn alone: the view draws only the lines on screen).
 */
import { Streams, type OutputFrame } from '@ferry/protocol';
import { endStyle, PLAIN, type Style } from './ansi';

export class OutputLog {
  readonly lines: string[] = [];
  readonly streams: number[] = [];
  readonly styles: Style[] = [];
  bytes = 0;
  /** Bumped on every change, for the view to notice. */
  version = 0;
  private partial = '';
  private partialStream: number = Streams.stdout;
  private style: Style = PLAIN;
  private readonly decoders = new Map<number, TextDecoder>();

  append(frames: readonly OutputFrame[]): void {
    for (const frame of frames) {
      this.bytes += frame.data.length;
      this.addText(this.decoder(frame.stream).decode(frame.data, { stream: true }), frame.stream);
    }
    this.version++;
  }

  /** Lines including the unfinished last one. */
  get count(): number {
    return this.lines.length + (this.partial ? 1 : 0);
  }

  line(i: number): { text: string; stream: number; style: Style } {
    if (i < this.lines.length) return { text: this.lines[i] ?? '', stream: this.streams[i] ?? Streams.stdout, style: this.styles[i] ?? PLAIN };
    return { text: this.partial, stream: this.partialStream, style: this.style };
  }

  private decoder(stream: number): TextDecoder {
    let d = this.decoders.get(stream);
    if (!d) {
      d = new TextDecoder('utf-8', { fatal: false });
      this.decoders.set(stream, d);
    }
    return d;
  }

  private addText(text: string, stream: number): void {
    const parts = text.split('\n');
    for (let i = 0; i < parts.length; i++) {
      if (this.partial === '') this.partialStream = stream;
      this.partial += parts[i] ?? '';
      if (i < parts.length - 1) this.endLine();
    }
  }

  private endLine(): void {
    // A carriage return rewrites the line (progress bars): keep what was written last.
    let text = this.partial.endsWith('\r') ? this.partial.slice(0, -1) : this.partial;
    const cr = text.lastIndexOf('\r');
    if (cr >= 0) text = text.slice(cr + 1);
    this.lines.push(text);
    this.streams.push(this.partialStream);
    this.styles.push(this.style);
    this.style = endStyle(text, this.style);
    this.partial = '';
  }
}
