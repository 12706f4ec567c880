export * from './errors.js';
export * from './schemas.js';
export * from './frames.js';
export * from './jointoken.js';
export * from './duration.js';
export * from './version.js';
export * from './config.js';
export * from './secrets.js';
