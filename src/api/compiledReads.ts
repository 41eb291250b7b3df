import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLSchema,
  getOperationAST,
  Kind,
  type OperationDefinitionNode,
  parse,
  type SelectionSetNode,
  validate,
} from 'graphql';
import { getArgumentValues, getVariableValues } from 'graphql/execution/values.js';
import type { Queryable } from '../db/index.js';
import { quoteIdentifier } from '../db/index.js';
import { canonicalJsonColumnSql } from '../projections/index.js';
import type { AnyView } from './anyView.js';
import { type Identity, requireScope } from './auth.js';
import type { DocumentChecks } from './documentGuards.js';
import { byKeyStatement, countRows, type PageArgs, planPage } from './queryView.js';
import { fieldName, type SchemaOptions } from './schema/context.js';
import { typeName } from './schema/index.js';
import { readView } from './schema/readYourWrites.js';

/**
 * Queries of views served without GraphQL execution: a document made only of connections
 * (`<view>`) and by-key fields (`<view>ByKey`) is compiled once, when first seen, into one
 * statement per root field that builds each node's JSON in PostgreSQL, in the canonical form
 * of each column (as canonicalSelectList reads it). Node then only joins JSON texts and
 * computes cursors exactly as queryPage does. Documents are checked by the same guards and
 * validation rules as Yoga's path, and variables and arguments coerced by GraphQL's own
 * functions, so filters, page sizes and cursors mean the same. Anything else (mutations,
 * subscriptions, status fields, directives, any error) is left to Yoga, which answers it as
 * it always did.
 *
 * Every compiled answer carries an ETag: a hash of the document, its variables, the caller's
 * principal and scopes, and the changelog version of each view it read, taken in the same
 * statement (so on the same database and snapshot, replica or primary) as the rows. A request
 * whose If-None-Match holds the current ETag is answered 304 after one indexed lookup per
 * view, without reading the page.
 */
export interface CompiledReads {
  /** Serves `req` when its operation compiles; false when Yoga must serve it (nothing was sent). */
  serve(
    req: IncomingMessage,
    res: ServerResponse,
    identity: Identity,
    body: Buffer | undefined,
  ): Promise<boolean>;
}

export interface CompiledReadsOptions {
  schema: GraphQLSchema;
  options: SchemaOptions;
  checks: DocumentChecks;
  /** Told of each request answered here (status 200 or 304). */
  onServed?: (served: {
    method: 'get' | 'post';
    status: number;
    seconds: number;
    /** The operation's name, if it has one. */
    operation: string | undefined;
  }) => void;
  /** Documents kept compiled (or known not to compile). @default 1000 */
  cacheSize?: number;
  /**
   * Distinct statements run as named prepared statements (parsed and planned once per
   * connection); 0 sends every statement unnamed. @default 100 (see preparedStatements)
   */
  preparedStatements?: number;
}

/**
 * The version of a view's changelog: its last change below the snapshot's xmin (every
 * transaction below it has ended, so no change can still commit there). It moves with every
 * change once the change's transaction and those before it have ended, never goes back,
 * and the rows read in the same snapshot hold at least the changes it counts.
 */
const versionSql = (param: string) => `(select c.transaction_id::text || '/' || c.seq::text
  from tributary.view_changes c
  where c.view = ${param} and c.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
  order by c.transaction_id desc, c.seq desc limit 1)`;

/** A view's version alone: what a request with If-None-Match reads first. */
const VERSION_STATEMENT = `select ${versionSql('$1')} as v`;

type NodeField = { key: string; column: string } | { key: string; typename: string };
type EdgeField = { key: string; kind: 'cursor' } | { key: string; kind: 'node'; node: number } | Typename;
type PageInfoField =
  | { key: string; kind: 'hasNextPage' | 'hasPreviousPage' | 'startCursor' | 'endCursor' }
  | Typename;
type Typename = { key: string; kind: 'typename'; typename: string };
type ConnectionField =
  | { key: string; kind: 'edges'; fields: EdgeField[] }
  | { key: string; kind: 'nodes'; node: number }
  | { key: string; kind: 'pageInfo'; fields: PageInfoField[] }
  | { key: string; kind: 'totalCount' }
  | Typename;

interface RootField {
  key: string;
  node: FieldNode;
  field: GraphQLField<unknown, unknown>;
  view: AnyView;
  kind: 'connection' | 'byKey';
  /** The select list of each distinct node selection, as JSON text (`__n<i>`). */
  nodes: string[];
  fields: ConnectionField[];
}

interface Compiled {
  document: DocumentNode;
  operation: OperationDefinitionNode;
  roots: RootField[];
  /** The planned reads of an operation without variables: they are the same for every request. */
  reads?: PlannedRead[];
}

interface PlannedRead {
  view: AnyView;
  minPosition: string | undefined;
  run: (db: Queryable) => Promise<{ version: string | null; json: string }>;
}

/**
 * Names the statements of compiled reads, so that each connection parses and plans one only
 * the first time it runs it (PostgreSQL may then keep a generic plan): a page's statement is
 * the same text for every request of its document, only its parameters differ. The name is a
 * hash of the text, so every pool and API sharing a connection agrees on it. Names are
 * bounded, since every connection keeps what it prepared for its lifetime: a text is named
 * from its second run (one-off statements take no slot), and once `limit` texts are named,
 * further ones run unnamed as before.
 */
export function preparedStatements(limit: number): (text: string) => string | undefined {
  const names = new Map<string, string>();
  const seenOnce = new Set<string>();
  return (text) => {
    if (limit <= 0) return undefined;
    const known = names.get(text);
    if (known !== undefined || names.size >= limit) return known;
    if (!seenOnce.has(text)) {
      if (seenOnce.size >= 10 * limit) seenOnce.clear();
      seenOnce.add(text);
      return undefined;
    }
    seenOnce.delete(text);
    const name = `tributary_read_${createHash('sha1').update(text).digest('hex').slice(0, 32)}`;
    names.set(text, name);
    return name;
  };
}

export function compiledReads(options: CompiledReadsOptions): CompiledReads {
  const { schema, checks } = options;
  const settings = options.options;
  const cacheSize = options.cacheSize ?? 1000;
  const statementName = preparedStatements(options.preparedStatements ?? 100);
  /** Runs a compiled statement, named when it is one of the prepared ones. */
  const run = <Row extends Record<string, unknown>>(db: Queryable, text: string, values: unknown[]) => {
    const name = statementName(text);
    return name === undefined ? db.query<Row>(text, values) : db.query<Row>({ name, text, values });
  };
  const cache = new Map<string, Compiled | null>();
  const views = new Map<string, { view: AnyView; kind: 'connection' | 'byKey' }>();
  for (const view of settings.views) {
    views.set(fieldName(view.name), { view, kind: 'connection' });
    views.set(`${fieldName(view.name)}ByKey`, { view, kind: 'byKey' });
  }
  const queryType = schema.getQueryType()!;

  const compiled = (query: string, operationName: string | undefined): Compiled | null => {
    const cacheKey = `${operationName ?? ''}\u0000${query}`;
    const known = cache.get(cacheKey);
    if (known !== undefined) return known;
    const result = compile(query, operationName);
    if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
    cache.set(cacheKey, result);
    return result;
  };

  const compile = (query: string, operationName: string | undefined): Compiled | null => {
    let document: DocumentNode;
    try {
      document = parse(query, { maxTokens: checks.maxTokens });
    } catch {
      return null;
    }
    if (checks.measure(document).length > 0) return null;
    if (validate(schema, document, checks.rules).length > 0) return null;
    const operation = getOperationAST(document, operationName);
    if (operation?.operation !== 'query') return null;
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    }
    const top = collect(operation.selectionSet, fragments);
    if (!top || top.size === 0) return null;
    const roots: RootField[] = [];
    for (const [key, nodes] of top) {
      const name = nodes[0]!.name.value;
      const served = views.get(name);
      if (!served) return null; // __typename, status fields: Yoga
      const selection = merged(nodes);
      const root: RootField = {
        key,
        node: nodes[0]!,
        field: queryType.getFields()[name]!,
        view: served.view,
        kind: served.kind,
        nodes: [],
        fields: [],
      };
      if (served.kind === 'byKey') {
        const node = nodeSelect(served.view, selection, fragments, root.nodes);
        if (node === undefined) return null;
      } else {
        const fields = connectionFields(served.view, selection, fragments, root.nodes);
        if (!fields) return null;
        root.fields = fields;
      }
      roots.push(root);
    }
    return { document, operation, roots };
  };

  const serve: CompiledReads['serve'] = async (req, res, identity, body) => {
    const startedAt = performance.now();
    const method = req.method === 'GET' ? 'get' : req.method === 'POST' ? 'post' : undefined;
    if (!method) return false;
    const accepted = responseType(req.headers.accept);
    if (!accepted) return false;
    const params = method === 'get' ? paramsOfUrl(req.url ?? '') : paramsOfBody(req, body);
    if (!params) return false;
    const plan = compiled(params.query, params.operationName);
    if (!plan) return false;
    if (checks.deepVariables(params.variables)) return false;
    if (checks.oversized(plan.document, params.variables)) return false;
    const coerced = getVariableValues(
      schema,
      plan.operation.variableDefinitions ?? [],
      params.variables ?? {},
      {
        maxErrors: 1,
      },
    );
    if (coerced.errors) return false;
    let reads: PlannedRead[];
    try {
      requireScope(identity, 'read');
      reads =
        plan.reads ??
        plan.roots.map((root) => planRoot(root, getArgumentValues(root.field, root.node, coerced.coerced)));
    } catch {
      return false; // Yoga answers with the same error
    }
    if (!plan.operation.variableDefinitions?.length) plan.reads = reads;
    const controller = new AbortController();
    const onClose = () => controller.abort();
    req.once('close', onClose);
    const context = { identity, requestId: '', signal: controller.signal };
    try {
      const tagOf = (versions: (string | null)[]) =>
        `W/"${createHash('sha1')
          .update(
            JSON.stringify([
              params.query,
              params.operationName ?? null,
              params.variables ?? null,
              identity.principal!.name,
              [...identity.principal!.scopes].sort(),
              versions,
            ]),
          )
          .digest('base64url')}"`;
      const ifNoneMatch = req.headers['if-none-match'];
      if (ifNoneMatch) {
        const versions = await Promise.all(
          reads.map((read) =>
            readView(settings, read.view.name, read.minPosition, context, async (db) => {
              const { rows } = await run<{ v: string | null }>(db, VERSION_STATEMENT, [read.view.name]);
              return rows[0]!.v;
            }),
          ),
        );
        const tag = tagOf(versions);
        if (matches(ifNoneMatch, tag)) {
          res.writeHead(304, headers(req, { etag: tag }));
          res.end();
          options.onServed?.({
            method,
            status: 304,
            seconds: (performance.now() - startedAt) / 1000,
            operation: plan.operation.name?.value,
          });
          return true;
        }
      }
      const results = await Promise.all(
        reads.map((read) => readView(settings, read.view.name, read.minPosition, context, read.run)),
      );
      const tag = tagOf(results.map((result) => result.version));
      let json = '{"data":{';
      results.forEach((result, i) => {
        json += `${i > 0 ? ',' : ''}${JSON.stringify(plan.roots[i]!.key)}:${result.json}`;
      });
      json += '}}';
      res.writeHead(
        200,
        headers(req, {
          'content-type': `${accepted}; charset=utf-8`,
          'content-length': String(Buffer.byteLength(json)),
          etag: tag,
        }),
      );
      res.end(json);
      options.onServed?.({
        method,
        status: 200,
        seconds: (performance.now() - startedAt) / 1000,
        operation: plan.operation.name?.value,
      });
      return true;
    } catch {
      // A database that failed or a read-your-writes wait that timed out: Yoga reads again
      // and reports the error as it always does.
      return res.headersSent;
    } finally {
      req.off('close', onClose);
    }
  };

  /** Checks a root field's arguments and builds its statement (throws what the resolver would). */
  const planRoot = (root: RootField, args: Record<string, unknown>): PlannedRead => {
    const { view } = root;
    const schemaName = settings.viewSchema;
    const minPosition = (args.minPosition as string | null | undefined) ?? undefined;
    const nodeColumns = root.nodes.map((sql, i) => `${sql}::text as "__n${i}"`);
    const select = [...nodeColumns, 'true as "__row"'].join(', ');
    const lateral = (text: string, params: unknown[]) => {
      params.push(view.name);
      return `select v."__version", p.* from (select ${versionSql(`$${params.length}`)} as "__version") v
        left join lateral (${text}) p on true`;
    };
    if (root.kind === 'byKey') {
      const statement = byKeyStatement(schemaName, view, args, select);
      const text = lateral(statement.text, statement.params);
      return {
        view,
        minPosition,
        run: async (db: Queryable) => {
          const { rows } = await run<Record<string, string | null>>(db, text, statement.params);
          const row = rows[0]!;
          return { version: row.__version ?? null, json: row.__row === null ? 'null' : row.__n0! };
        },
      };
    }
    const pageArgs = args as PageArgs;
    const plan = planPage(schemaName, view, pageArgs, settings, select);
    // The page in its own order: the one-row side of the join cannot reorder it.
    const text = lateral(plan.text, plan.params);
    return {
      view,
      minPosition,
      run: async (db: Queryable) => {
        const { rows } = await run<Record<string, string | null>>(db, text, plan.params);
        const version = rows[0]!.__version ?? null;
        const page = plan.page(
          rows.filter((row) => row.__row !== null),
          (row) => row,
        );
        let json = '{';
        let first = true;
        for (const field of root.fields) {
          json += `${first ? '' : ','}${JSON.stringify(field.key)}:`;
          first = false;
          switch (field.kind) {
            case 'typename':
              json += JSON.stringify(field.typename);
              break;
            case 'totalCount':
              json += String(await countRows(db, schemaName, view, pageArgs.where));
              break;
            case 'nodes':
              json += `[${page.edges.map((edge) => edge.node[`__n${field.node}`]).join(',')}]`;
              break;
            case 'pageInfo':
              json += `{${field.fields
                .map(
                  (f) =>
                    `${JSON.stringify(f.key)}:${JSON.stringify(f.kind === 'typename' ? f.typename : page.pageInfo[f.kind])}`,
                )
                .join(',')}}`;
              break;
            case 'edges':
              json += `[${page.edges
                .map(
                  (edge) =>
                    `{${field.fields
                      .map(
                        (f) =>
                          `${JSON.stringify(f.key)}:${
                            f.kind === 'cursor'
                              ? JSON.stringify(edge.cursor)
                              : f.kind === 'node'
                                ? edge.node[`__n${f.node}`]
                                : JSON.stringify(f.typename)
                          }`,
                      )
                      .join(',')}}`,
                )
                .join(',')}]`;
              break;
          }
        }
        return { version, json: `${json}}` };
      },
    };
  };

  const connectionFields = (
    view: AnyView,
    selection: SelectionSetNode[],
    fragments: Map<string, FragmentDefinitionNode>,
    nodes: string[],
  ): ConnectionField[] | undefined => {
    const type = typeName(view.name);
    const fields = collectAll(selection, fragments);
    if (!fields) return undefined;
    const out: ConnectionField[] = [];
    for (const [key, list] of fields) {
      const name = list[0]!.name.value;
      const sub = merged(list);
      if (name === '__typename') out.push({ key, kind: 'typename', typename: `${type}Connection` });
      else if (name === 'totalCount') out.push({ key, kind: 'totalCount' });
      else if (name === 'nodes') {
        const node = nodeSelect(view, sub, fragments, nodes);
        if (node === undefined) return undefined;
        out.push({ key, kind: 'nodes', node });
      } else if (name === 'pageInfo') {
        const info = collectAll(sub, fragments);
        if (!info) return undefined;
        out.push({
          key,
          kind: 'pageInfo',
          fields: [...info].map(([k, l]) => {
            const n = l[0]!.name.value;
            return n === '__typename'
              ? { key: k, kind: 'typename', typename: 'PageInfo' }
              : { key: k, kind: n as 'hasNextPage' };
          }),
        });
      } else if (name === 'edges') {
        const edge = collectAll(sub, fragments);
        if (!edge) return undefined;
        const edgeFields: EdgeField[] = [];
        for (const [k, l] of edge) {
          const n = l[0]!.name.value;
          if (n === '__typename') edgeFields.push({ key: k, kind: 'typename', typename: `${type}Edge` });
          else if (n === 'cursor') edgeFields.push({ key: k, kind: 'cursor' });
          else {
            const node = nodeSelect(view, merged(l), fragments, nodes);
            if (node === undefined) return undefined;
            edgeFields.push({ key: k, kind: 'node', node });
          }
        }
        out.push({ key, kind: 'edges', fields: edgeFields });
      } else return undefined;
    }
    return out;
  };

  /** The JSON of a node selection, built in SQL; its index among the root field's nodes. */
  const nodeSelect = (
    view: AnyView,
    selection: SelectionSetNode[],
    fragments: Map<string, FragmentDefinitionNode>,
    nodes: string[],
  ): number | undefined => {
    const fields = collectAll(selection, fragments);
    if (!fields) return undefined;
    const list: NodeField[] = [];
    for (const [key, l] of fields) {
      const name = l[0]!.name.value;
      if (name === '__typename') list.push({ key, typename: typeName(view.name) });
      else if (view.columns[name]) list.push({ key, column: name });
      else return undefined;
    }
    const sql = nodeJson(view, list);
    const existing = nodes.indexOf(sql);
    if (existing >= 0) return existing;
    nodes.push(sql);
    return nodes.length - 1;
  };

  return { serve };
}

/**
 * A node's JSON text, concatenated from each value's JSON: about half the work of
 * json_build_object, which looks up how to write each of its arguments again on every row.
 * Each value is what json_build_object would write for it (to_json of the canonical value);
 * keys are GraphQL names (letters, digits and underscores), so they need no escaping.
 */
function nodeJson(view: AnyView, fields: NodeField[]): string {
  if (fields.length === 0) return `'{}'`;
  const members = fields.map((field, i) => {
    const key = `'${i === 0 ? '{' : ','}"${field.key}":'`;
    if ('typename' in field) return `${key} || '"${field.typename}"'`;
    return `${key} || ${valueJsonSql(`t.${quoteIdentifier(field.column)}`, view.columns[field.column]!.type)}`;
  });
  return `(${members.join(' || ')} || '}')`;
}

/**
 * A column's canonical value (canonicalJsonColumnSql) as JSON text, 'null' for SQL null. The
 * canonical text of numeric, bigint and timestamptz (digits, sign, point, NaN, Infinity; a
 * rendered timestamp) needs no escaping, so it is quoted directly, cheaper than to_json.
 */
function valueJsonSql(column: string, type: AnyView['columns'][string]['type']): string {
  const canonical = canonicalJsonColumnSql(column, type);
  return type === 'numeric' || type === 'bigint' || type === 'timestamptz'
    ? `coalesce('"' || ${canonical} || '"', 'null')`
    : `coalesce(to_json(${canonical})::text, 'null')`;
}

/** Fields by response key, in order, fragments expanded; undefined when a directive is used. */
function collectAll(
  selections: readonly SelectionSetNode[],
  fragments: Map<string, FragmentDefinitionNode>,
): Map<string, FieldNode[]> | undefined {
  const fields = new Map<string, FieldNode[]>();
  for (const selection of selections) if (!collect(selection, fragments, fields)) return undefined;
  return fields;
}

function collect(
  selectionSet: SelectionSetNode,
  fragments: Map<string, FragmentDefinitionNode>,
  fields: Map<string, FieldNode[]> = new Map(),
  depth = 0,
): Map<string, FieldNode[]> | undefined {
  if (depth > 32) return undefined;
  for (const selection of selectionSet.selections) {
    if (selection.directives?.length) return undefined;
    if (selection.kind === Kind.FIELD) {
      const key = selection.alias?.value ?? selection.name.value;
      const list = fields.get(key);
      if (list) list.push(selection);
      else fields.set(key, [selection]);
    } else {
      const fragment =
        selection.kind === Kind.INLINE_FRAGMENT ? selection : fragments.get(selection.name.value);
      if (!fragment || !collect(fragment.selectionSet, fragments, fields, depth + 1)) return undefined;
    }
  }
  return fields;
}

/** The selections of every field merged under one response key. */
const merged = (nodes: readonly FieldNode[]): SelectionSetNode[] =>
  nodes.flatMap((node) => (node.selectionSet ? [node.selectionSet] : []));

interface Params {
  query: string;
  operationName: string | undefined;
  variables: Record<string, unknown> | undefined;
}

function paramsOfUrl(url: string): Params | undefined {
  const search = new URL(url, 'http://localhost').searchParams;
  const query = search.get('query');
  if (!query || search.has('extensions')) return undefined;
  const variables = search.get('variables');
  try {
    return checked({
      query,
      operationName: search.get('operationName') ?? undefined,
      variables: variables ? JSON.parse(variables) : undefined,
    });
  } catch {
    return undefined;
  }
}

function paramsOfBody(req: IncomingMessage, body: Buffer | undefined): Params | undefined {
  if (!body || !(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json'))
    return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const { query, operationName, variables, extensions } = parsed as Record<string, unknown>;
  if (extensions != null && !(typeof extensions === 'object' && Object.keys(extensions).length === 0))
    return undefined;
  return checked({
    query: query as string,
    operationName: (operationName ?? undefined) as string | undefined,
    variables: (variables ?? undefined) as Record<string, unknown> | undefined,
  });
}

function checked(params: Params): Params | undefined {
  if (typeof params.query !== 'string') return undefined;
  if (params.operationName !== undefined && typeof params.operationName !== 'string') return undefined;
  const { variables } = params;
  if (
    variables !== undefined &&
    (variables === null || typeof variables !== 'object' || Array.isArray(variables))
  )
    return undefined;
  return params;
}

/** The media type Yoga would answer with, for the Accept headers served here; else undefined. */
function responseType(accept: string | undefined): string | undefined {
  if (!accept) return 'application/json';
  for (const item of accept.split(',')) {
    const type = item.split(';')[0]!.trim().toLowerCase();
    if (type === 'application/graphql-response+json') return type;
    if (type === 'application/json' || type === '*/*' || type === 'application/*') return 'application/json';
  }
  return undefined;
}

function matches(ifNoneMatch: string, tag: string): boolean {
  return ifNoneMatch.split(',').some((item) => {
    const candidate = item.trim();
    return candidate === tag || candidate === '*' || `W/${candidate}` === tag;
  });
}

/**
 * Answers may be kept by the caller and revalidated: `private` (a shared cache must not hand
 * one caller's page to another) and `no-cache` (always revalidated, never served stale).
 */
function headers(req: IncomingMessage, extra: Record<string, string>): Record<string, string> {
  const origin = req.headers.origin;
  return {
    ...extra,
    'cache-control': 'private, no-cache',
    vary: origin ? 'Origin, Authorization, X-API-Key' : 'Authorization, X-API-Key',
    // As Yoga's default CORS answers.
    ...(origin ? { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true' } : {}),
  };
}
