import { quoteIdentifier } from '../../db/index.js';
import type { ViewChange } from '../changelog/index.js';
import type { AnyView } from '../defineProjection.js';
import { canonicalJsonbSql } from '../values.js';
import type { DocumentOp, ResolvedSink, SearchDocument } from './types.js';

/**
 * The id of a row's document: its key value as text for a one-column key, the JSON array
 * of the key values otherwise. Values are canonical, so the same row always gets the same id.
 */
export function documentId(view: AnyView, key: Record<string, unknown>): string {
  if (view.primaryKey.length === 1) {
    const value = key[view.primaryKey[0]!];
    return typeof value === 'string' ? value : JSON.stringify(value);
  }
  return JSON.stringify(view.primaryKey.map((column) => key[column] ?? null));
}

function keyOf(view: AnyView, row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(view.primaryKey.map((column) => [column, row[column] ?? null]));
}

/** A document the sink could not make: its transform threw or returned something else than an object. */
export interface UnbuildableDocument {
  op: DocumentOp;
  reason: string;
}

/**
 * The document of a view row: the `transform`'s result, or the row's fields. Null keeps the
 * row out of the index (its document is deleted).
 */
export function buildDocument(sink: ResolvedSink, row: Record<string, unknown>): SearchDocument | null {
  if (sink.config.transform) {
    const document = sink.config.transform(row);
    if (document === null) return null;
    if (typeof document !== 'object' || Array.isArray(document)) {
      throw new TypeError(
        `transform returned ${Array.isArray(document) ? 'an array' : typeof document}, not an object or null`,
      );
    }
    return document;
  }
  const document: SearchDocument = {};
  for (const field of sink.fields) document[field.name] = row[field.name] ?? null;
  return document;
}

/**
 * The SQL expression of {@link buildDocument} for a row aliased `alias` in a query over the
 * view table: the same jsonb, value for value, as the document built in JavaScript from the
 * row's canonical values. Undefined when the sink has a `transform`, which only JavaScript
 * can run.
 */
export function documentSql(sink: ResolvedSink, alias: string): string | undefined {
  if (sink.config.transform) return undefined;
  const pairs = sink.fields.map((field) => {
    const column = sink.view.columns[field.name];
    if (!column) throw new Error(`field ${field.name} is not a column of view ${sink.view.name}`);
    const name = `'${field.name.replaceAll("'", "''")}'`;
    return `${name}, ${canonicalJsonbSql(`${alias}.${quoteIdentifier(field.name)}`, column.type)}`;
  });
  if (pairs.length === 0) return `'{}'::jsonb`;
  // jsonb_build_object takes at most 100 arguments: 50 fields a call, concatenated.
  const calls: string[] = [];
  for (let i = 0; i < pairs.length; i += 50)
    calls.push(`jsonb_build_object(${pairs.slice(i, i + 50).join(', ')})`);
  return calls.join(' || ');
}

/** The write that brings a row's document to `version`: an upsert, or a delete when there is no document. */
export function rowOp(
  sink: ResolvedSink,
  row: Record<string, unknown>,
  version: bigint,
): { op: DocumentOp } | UnbuildableDocument {
  const key = keyOf(sink.view, row);
  const id = documentId(sink.view, key);
  try {
    const document = buildDocument(sink, row);
    if (document === null) return { op: { op: 'delete', id, version, key } };
    return { op: { op: 'upsert', id, version, key, row, document } };
  } catch (error) {
    return {
      op: { op: 'upsert', id, version, key, row, document: {} },
      reason: `transform failed: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

/**
 * The writes of a batch of changes of the sink's view, one per document (the last change of
 * each wins), each versioned by its change's sequence number. Changes that are not upserts
 * or deletes (a reset) are left to the caller.
 */
export function changeOps(
  sink: ResolvedSink,
  changes: readonly ViewChange[],
): { ops: DocumentOp[]; unbuildable: UnbuildableDocument[] } {
  const byId = new Map<string, DocumentOp>();
  const unbuildable = new Map<string, UnbuildableDocument>();
  for (const change of changes) {
    const version = change.sequence;
    if (change.op === 'upsert' && change.row) {
      const made = rowOp(sink, change.row, version);
      byId.delete(made.op.id);
      unbuildable.delete(made.op.id);
      if ('reason' in made) unbuildable.set(made.op.id, made as UnbuildableDocument);
      else byId.set(made.op.id, made.op);
    } else if (change.op === 'delete') {
      const key = keyOf(sink.view, change.key);
      const id = documentId(sink.view, key);
      byId.delete(id);
      unbuildable.delete(id);
      byId.set(id, { op: 'delete', id, version, key });
    }
  }
  return { ops: [...byId.values()], unbuildable: [...unbuildable.values()] };
}

/** Approximate bytes of a write on the wire, for bounding bulk requests. */
export function opBytes(op: DocumentOp): number {
  return op.op === 'delete'
    ? 64 + op.id.length
    : 64 +
        op.id.length +
        JSON.stringify(op.document).length +
        (op.row === op.document ? 0 : JSON.stringify(op.row).length);
}

/** Splits writes into requests of at most `maxBytes` each (a single larger write goes alone). */
export function splitByBytes(ops: readonly DocumentOp[], maxBytes: number): DocumentOp[][] {
  const requests: DocumentOp[][] = [];
  let current: DocumentOp[] = [];
  let bytes = 0;
  for (const op of ops) {
    const size = opBytes(op);
    if (current.length > 0 && bytes + size > maxBytes) {
      requests.push(current);
      current = [];
      bytes = 0;
    }
    current.push(op);
    bytes += size;
  }
  if (current.length > 0) requests.push(current);
  return requests;
}
