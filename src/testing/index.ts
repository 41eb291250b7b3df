// `tributary/testing`: helpers for testing projections against a real PostgreSQL.
export { cdcChange, type Given, type GivenEvent, given, type When, type WhenOptions } from './given.js';
