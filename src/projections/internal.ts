// Building blocks for Tributary's own modules (the testing kit, the windowed-aggregation
// engine); not part of the public package surface.
export { type ApplyResult, applyEnvelopes, applyTimer, type FailureMemory } from './applyEnvelopes.js';
export { type CheckpointTarget, runBatch, type WorkerMemory } from './runBatch.js';
export { runSqlBatch } from './sqlStep.js';
export { createViewTables, viewsFingerprint, viewTableStatements } from './viewTables.js';
export { clearCache, createViewWriter, type RowCache, type ViewWriter } from './viewWriter.js';
