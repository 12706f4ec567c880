export { startServer, type RunningServer, type StartServerOptions } from './server.js';
export { loadServerConfig, ServerConfigSchema, type ServerConfig } from './config.js';
export type { Store } from './store/types.js';
export { SqliteStore } from './store/sqlite/index.js';
export { migrateSqliteToPostgres } from './store/postgres/migrate-from-sqlite.js';
