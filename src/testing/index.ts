// `tributary/testing`: helpers for testing projections and aggregates against a real PostgreSQL.
// Listed by name, like the package's main entry (src/index.unit.spec.ts snapshots both).
export { cdcChange, type Given, type GivenEvent, given, type When, type WhenOptions } from './given.js';
export {
  type StartTestDatabaseOptions,
  startTestDatabase,
  type TestDatabase,
} from './testDatabase.js';
export {
  panesByWindow,
  type TestElement,
  type TestPane,
  type TestStream,
  type TestStreamOptions,
  type TestStreamResult,
  type TestTime,
  testStream,
} from './testStream.js';
