// The public surface of the `tributary` package.
export * from './config/index.js';
export * from './errors.js';
export * from './ingest/index.js';
export { createLogger, type Logger, type LogLevel, silentLogger } from './logger.js';
export * from './projections/index.js';
