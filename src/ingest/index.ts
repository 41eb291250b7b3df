export * from './cdc/index.js';
export * from './eventstoredb/index.js';
export * from './log/index.js';
