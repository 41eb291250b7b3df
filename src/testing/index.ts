// `tributary/testing`: helpers for testing projections and aggregates against a real PostgreSQL.
export * from './testStream.js';
