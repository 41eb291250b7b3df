export * from './cdc/index.js';
export * from './log/index.js';
