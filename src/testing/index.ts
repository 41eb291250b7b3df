// `tributary/testing`: helpers for testing projections and aggregates against a real PostgreSQL.
export { cdcChange, type Given, type GivenEvent, given, type When, type WhenOptions } from './given.js';
export * from './testStream.js';
