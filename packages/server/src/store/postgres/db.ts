/**
 * The PostgreSQL connection pool and the small query layer the store is written on. SQL is
 * written with `?` placeholders, as in the SQLite store, and numbered ($1, $2…) here, so the
 * two stores' queries read alike. Every bigint (times in ms, byte counts) and numeric comes
 * back as a JavaScript number; JSON columns are text (hashes and review bindings are computed
 * over their exact bytes, which jsonb would reorder).
 */
import pg from 'pg';

export type Row = Record<string, unknown>;

/** What a query runs on: the pool, or one client inside a transaction. */
export interface Sql {
  all: (sql: string, params?: readonly unknown[]) => Promise<Row[]>;
  one: (sql: string, params?: readonly unknown[]) => Promise<Row | undefined>;
  /** Rows changed. */
  run: (sql: string, params?: readonly unknown[]) => Promise<number>;
}

const INT8 = 20;
const NUMERIC = 1700;
const toNumber = (v: string): number => Number(v);

/** Parsers for this pool only: bigint and numeric as numbers (every value the store keeps fits 2^53). */
type TextParser = (value: string) => unknown;
function getTypeParser(oid: number, format?: 'text' | 'binary'): TextParser {
  if (oid === INT8 || oid === NUMERIC) return toNumber;
  // pg-types declares its parsers `any`; they are functions of the value's text.
  const builtin = pg.types.getTypeParser(oid, format ?? 'text') as unknown as TextParser;
  return builtin;
}
const types: pg.CustomTypesConfig = { getTypeParser: getTypeParser as pg.CustomTypesConfig['getTypeParser'] };

/** `?` → `$n`, outside string literals (the store's SQL has no `?` inside quotes or comments otherwise). */
function numbered(sql: string): string {
  let n = 0;
  let out = '';
  let quoted = false;
  for (const ch of sql) {
    if (ch === "'") quoted = !quoted;
    out += ch === '?' && !quoted ? `$${++n}` : ch;
  }
  return out;
}

/**
 * Statements are prepared (named) on each connection the first time it runs them: PostgreSQL
 * then skips parsing and planning on every later run, which for the store's joins (a task with
 * its target, the claim's eligibility rule) is most of a query's database CPU and a good part of
 * its round trip. The store's SQL is a fixed set of texts; texts past MAX_PREPARED (batched
 * inserts whose size varies) run unnamed, so no connection collects statements without bound.
 * Texts without parameters are sent as they are (simple queries).
 */
const MAX_PREPARED = 500;

interface Statement {
  text: string;
  name: string | undefined;
}

const cache = new Map<string, Statement>();
function prepared(sql: string): Statement {
  let statement = cache.get(sql);
  if (statement === undefined) {
    statement = { text: numbered(sql), name: cache.size < MAX_PREPARED ? `ferry_${cache.size}` : undefined };
    cache.set(sql, statement);
  }
  return statement;
}

/**
 * A prepared statement the server no longer accepts: its result's columns changed (another
 * replica's migration altered a table a `SELECT *` reads), or the connection lost it (a pooler
 * that swaps server connections). Run once more on a fresh connection it is prepared anew.
 */
function isStalePrepared(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === '0A000' || code === '26000';
}

type Query = (config: pg.QueryConfig) => Promise<pg.QueryResult>;

function sqlOn(q: Query): Sql {
  const query = (sql: string, params: readonly unknown[]): Promise<pg.QueryResult> => {
    // Without parameters a text goes as a simple query (migrations send several statements in one).
    if (params.length === 0) return q({ text: sql });
    const { text, name } = prepared(sql);
    return q({ text, name, values: [...params] });
  };
  return {
    all: async (sql, params = []) => (await query(sql, params)).rows as Row[],
    one: async (sql, params = []) => (await query(sql, params)).rows[0] as Row | undefined,
    run: async (sql, params = []) => (await query(sql, params)).rowCount ?? 0,
  };
}

/** A statement for Db.batch: its name (SQL's namespace of prepared statements, shared with the driver's `ferry_N`), parameter types and text ($1…). */
export interface SqlPrepared {
  name: string;
  types: readonly string[];
  sql: string;
}

const MISSING_PREPARED = '26000';
const DUPLICATE_PREPARED = '42P05';

/** A value as an SQL literal (text quoted and escaped by the driver; numbers only if finite integers). */
function literal(v: string | number | null): string {
  if (v === null) return 'NULL';
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error(`not an integer for SQL: ${v}`);
    return String(v);
  }
  return pg.escapeLiteral(v);
}

export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}

/** Serialization failures and deadlocks: the transaction did nothing and may be run again. */
function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === '40001' || code === '40P01' || isStalePrepared(err);
}

export interface PoolOptions {
  url: string;
  /** Connections the pool opens at most (the LISTEN connection is one more). */
  size: number;
}

/** The client options for `url`; pg honours sslmode (verify-full checks the chain and the host name), sslrootcert, sslcert, sslkey. */
export function clientConfig(url: string): pg.ClientConfig {
  return { connectionString: url, types, application_name: 'ferry-server' };
}

export class Db implements Sql {
  readonly pool: pg.Pool;
  readonly all: Sql['all'];
  readonly one: Sql['one'];
  readonly run: Sql['run'];

  constructor(readonly options: PoolOptions) {
    this.pool = new pg.Pool({ ...clientConfig(options.url), max: options.size, idleTimeoutMillis: 30_000 });
    // An idle client whose connection drops (database restarted) is removed by the pool; the
    // error must not crash the process.
    this.pool.on('error', () => undefined);
    // The pool drops a connection whose query failed, so the second try runs on another one.
    const s = sqlOn(async (config) => {
      try {
        return await this.pool.query(config);
      } catch (err) {
        if (!isStalePrepared(err)) throw err;
        return this.pool.query(config);
      }
    });
    this.all = s.all;
    this.one = s.one;
    this.run = s.run;
  }

  /** Runs `fn` in one transaction (READ COMMITTED); a deadlock or serialization failure is retried a few times. */
  async tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const client = await this.pool.connect();
      let broken = false;
      try {
        await client.query('BEGIN');
        const result = await fn(sqlOn((config) => client.query(config)));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
        // A connection holding a stale prepared statement is closed, not reused.
        broken ||= isStalePrepared(err);
        if (attempt < 4 && isRetryable(err)) continue;
        throw err;
      } finally {
        client.release(broken);
      }
    }
  }

  /** The SQL-level prepared statements (PREPARE) each connection has, by name. */
  private readonly preparedOn = new WeakMap<pg.PoolClient, Set<string>>();

  /**
   * Runs several statements in ONE round trip, as one simple query, which PostgreSQL runs as one
   * implicit transaction (each statement on its own snapshot, taken when it starts, so a lock
   * taken by one is in force for the next one's reads; the commit at its end, synchronous as
   * any; on an error nothing of it is kept). A simple query has no parameters, so the statement
   * that carries the values is `statement`, prepared with SQL's PREPARE on each connection the
   * first time (in the same round trip) and then run by `EXECUTE name(literals)`: parsed and
   * planned once per connection, as the driver's own prepared statements are. `text` gets the
   * EXECUTE and returns the whole batch. Returns the rows of the last statement.
   *
   * A pooler in transaction mode may hand this connection's next transaction to a server
   * connection that lacks the statement, or has it already: the batch is then sent again with,
   * or without, the PREPARE (nothing of the failed one was kept).
   */
  async batch(statement: SqlPrepared, values: readonly (string | number | null)[], text: (execute: string) => string): Promise<Row[]> {
    const execute = text(`EXECUTE ${statement.name}(${values.map(literal).join(', ')})`);
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken = false;
      const made = this.preparedOn.get(client) ?? new Set<string>();
      this.preparedOn.set(client, made);
      try {
        const prepare = made.has(statement.name) ? '' : `PREPARE ${statement.name} (${statement.types.join(', ')}) AS ${statement.sql}; `;
        const results = await client.query(`${prepare}${execute}`);
        made.add(statement.name);
        const all = Array.isArray(results) ? (results as pg.QueryResult[]) : [results];
        return (all.at(-1)?.rows ?? []) as Row[];
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === MISSING_PREPARED) made.delete(statement.name);
        else if (code === DUPLICATE_PREPARED) made.add(statement.name);
        // A statement whose result no longer fits the table (see isStalePrepared): a fresh connection prepares it anew.
        else broken = isStalePrepared(err);
        if (attempt < 3 && (code === MISSING_PREPARED || code === DUPLICATE_PREPARED || broken)) continue;
        throw err;
      } finally {
        client.release(broken);
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
