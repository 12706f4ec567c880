/**
 * Reads Prometheus text with a parser written for Prometheus (parse-prometheus-text-format), not
 * with our own regular expressions, so a malformed exposition fails the tests.
 */
import parse, { type Family } from 'parse-prometheus-text-format';

export class Scrape {
  readonly families: ReadonlyMap<string, Family>;
  constructor(text: string) {
    this.families = new Map(parse(text).map((f) => [f.name, f]));
  }

  family(name: string): Family {
    const f = this.families.get(name);
    if (!f) throw new Error(`no metric family ${name} in the scrape`);
    return f;
  }

  /** The value of a counter or gauge sample whose labels include `labels`; 0 when there is none. */
  value(name: string, labels: Record<string, string> = {}): number {
    const sample = this.family(name).metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    return sample ? Number(sample.value) : 0;
  }

  /** A histogram's observation count (all its label sets together). */
  count(name: string): number {
    return this.family(name).metrics.reduce((n, m) => n + Number(m.count ?? 0), 0);
  }
}
