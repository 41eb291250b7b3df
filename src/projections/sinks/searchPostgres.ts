import { createHash } from 'node:crypto';
import { type Queryable, qualified, quoteIdentifier } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
import type { AnyView } from '../defineProjection.js';
import { canonicalSelectList, toCanonical } from '../values.js';
import { SQL_TYPES } from '../view.js';
import type { ResolvedField } from './types.js';

export interface SearchArgs {
  query: string;
  first: number;
  after?: string | null | undefined;
  /** Extra conditions on the view's columns (unqualified names), pushing their parameters. */
  where?: (params: unknown[]) => string;
}

export interface SearchHit {
  cursor: string;
  /** Relevance: ts_rank_cd of the weighted tsvector, plus a small share of trigram similarity. */
  score: number;
  /** Matches in each searchable field, HTML-escaped, with `<mark>` around the matched words. */
  highlights: { field: string; snippet: string }[];
  /** The view row, canonical. */
  node: Record<string, unknown>;
}

export interface SearchPage {
  hits: SearchHit[];
  hasNextPage: boolean;
  endCursor: string | null;
  /** Matches in all, computed only when asked. */
  count(): Promise<number>;
}

export interface SearchTarget {
  view: AnyView;
  schema: string;
  alias: string;
  fields: readonly ResolvedField[];
  language: string;
  /** The index has a trigram column (pg_trgm): misspelled words match too. */
  trigram: boolean;
}

const START = '\u0001';
const STOP = '\u0002';
const MAX_QUERY = 500;

/**
 * The query text as a tsquery: `websearch_to_tsquery` (quotes for phrases, `or`, `-` to
 * exclude), with its last word also matching as a prefix (`lapt` finds `laptop`) while the
 * user is still typing it.
 */
function tsqueryParts(query: string): { web: string; prefix: string | null } {
  const match = /(^|\s)([\p{L}\p{N}_]+)$/u.exec(query);
  const quotes = (query.match(/"/g) ?? []).length;
  if (!match || quotes % 2 === 1 || /^or$/i.test(match[2]!)) return { web: query, prefix: null };
  return { web: query.slice(0, match.index), prefix: `${match[2]}:*` };
}

function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

function snippet(raw: string): string {
  return escapeHtml(raw).replaceAll(START, '<mark>').replaceAll(STOP, '</mark>');
}

/** Ranked hits of a search over a PostgreSQL search index, keyset-paginated on (score, key). */
export async function searchPostgres(
  db: Queryable,
  target: SearchTarget,
  args: SearchArgs,
): Promise<SearchPage> {
  const query = args.query.trim();
  if (query.length === 0 || query.length > MAX_QUERY) {
    throw new ValidationError(`A search query must have 1 to ${MAX_QUERY} characters.`, { field: 'query' });
  }
  if ([...query].some((char) => char.charCodeAt(0) < 9))
    throw new ValidationError('A search query cannot hold control characters.', { field: 'query' });
  const { view } = target;
  const signature = createHash('sha256').update(`${target.alias}|${query}`).digest('base64url').slice(0, 16);
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  const language = `'${target.language}'::regconfig`;
  const parts = tsqueryParts(query);
  const web = parts.web.trim() ? `websearch_to_tsquery(${language}, ${param(parts.web)})` : `''::tsquery`;
  const tsquery = parts.prefix ? `(${web} && to_tsquery(${language}, ${param(parts.prefix)}))` : web;
  // Misspellings match only plain words: trigram similarity knows no phrase, `or` or exclusion.
  const plain = /^[\p{L}\p{N}_\s]+$/u.test(query) && !/(^|\s)or(\s|$)/i.test(query);
  const raw = target.trigram && plain ? param(query) : undefined;
  const match = raw ? `(t."__search" @@ q."__q" or ${raw} <% t."__text")` : `t."__search" @@ q."__q"`;
  const score = raw
    ? `(ts_rank_cd(t."__search", q."__q") + 0.01 * word_similarity(${raw}, t."__text"))::float8`
    : `ts_rank_cd(t."__search", q."__q")::float8`;
  const where = args.where ? args.where(params) : 'true';
  const matchParams = params.length;
  const keys = view.primaryKey.map(quoteIdentifier);
  let keyset = 'true';
  if (args.after != null) {
    const cursor = decodeCursor(args.after, signature, view);
    const s = param(cursor.score);
    const k = cursor.key.map(
      (value, i) => `${param(value)}::${SQL_TYPES[view.columns[view.primaryKey[i]!]!.type]}`,
    );
    keyset = `(m."__rank" < ${s}::float8 or (m."__rank" = ${s}::float8 and (${keys.map((c) => `m.${c}`).join(', ')}) > (${k.join(', ')})))`;
  }
  const matches = `with q as (select ${tsquery} as "__q"),
    m as (select t.*, ${score} as "__rank" from ${qualified(target.schema, target.alias)} t, q
          where not t."__deleted" and ${match} and (${where}))`;
  const limit = param(args.first + 1);
  const searchable = target.fields.filter((field) => field.searchable);
  const headlines = searchable
    .map(
      (field, i) =>
        `ts_headline(${language}, coalesce(s."__document"->>'${field.name.replaceAll("'", "''")}', ''), q."__q",
           'StartSel=${START}, StopSel=${STOP}, MaxWords=30, MinWords=10') as "__h${i}"`,
    )
    .join(', ');
  const keyText = view.primaryKey
    .map((column, i) => `s.${quoteIdentifier(column)}::text as "__k${i}"`)
    .join(', ');
  const sql = `${matches}
    select ${canonicalSelectList(view.columns, 's')}, s."__rank"::text as "__score", ${keyText}${headlines ? `, ${headlines}` : ''}
    from (select * from m where ${keyset} order by m."__rank" desc, ${keys.map((c) => `m.${c}`).join(', ')} limit ${limit}) s, q
    order by s."__rank" desc, ${keys.map((c) => `s.${c}`).join(', ')}`;
  const { rows } = await db.query<Record<string, unknown>>(sql, params);
  const more = rows.length > args.first;
  const hits = rows.slice(0, args.first).map((row) => {
    const node: Record<string, unknown> = {};
    for (const column of Object.keys(view.columns)) node[column] = row[column];
    const scoreText = String(row.__score);
    const key = view.primaryKey.map((column, i) =>
      view.columns[column]!.type === 'timestamptz' ? (node[column] as string) : (row[`__k${i}`] as string),
    );
    const highlights = searchable
      .map((field, i) => ({ field: field.name, raw: String(row[`__h${i}`] ?? '') }))
      .filter((h) => h.raw.includes(START))
      .map((h) => ({ field: h.field, snippet: snippet(h.raw) }));
    return { cursor: encodeCursor(signature, scoreText, key), score: Number(scoreText), highlights, node };
  });
  const countParams = params.slice(0, matchParams);
  return {
    hits,
    hasNextPage: more,
    endCursor: hits.at(-1)?.cursor ?? null,
    count: async () => {
      // The same matches without the page (whose parameters come after theirs).
      const { rows: counted } = await db.query<{ n: string }>(
        `${matches} select count(*)::text as n from m`,
        countParams,
      );
      return Number(counted[0]!.n);
    },
  };
}

function encodeCursor(signature: string, score: string, key: string[]): string {
  return Buffer.from(JSON.stringify([signature, score, key])).toString('base64url');
}

function decodeCursor(cursor: string, signature: string, view: AnyView): { score: string; key: string[] } {
  const malformed = () =>
    new ValidationError('Malformed search cursor.', {
      field: 'after',
      hint: 'Pass a cursor exactly as a previous page of the same search returned it.',
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw malformed();
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) throw malformed();
  const [sig, score, key] = parsed as [unknown, unknown, unknown];
  if (sig !== signature) {
    throw new ValidationError('This cursor belongs to another search.', {
      field: 'after',
      hint: 'Use a cursor only with the query it came from.',
    });
  }
  if (
    typeof score !== 'string' ||
    !Number.isFinite(Number(score)) ||
    !Array.isArray(key) ||
    key.length !== view.primaryKey.length
  ) {
    throw malformed();
  }
  key.forEach((value, i) => {
    if (typeof value !== 'string') throw malformed();
    const type = view.columns[view.primaryKey[i]!]!.type;
    try {
      if (type !== 'double' && type !== 'boolean')
        toCanonical(type, type === 'integer' ? Number(value) : value);
    } catch {
      throw malformed();
    }
  });
  return { score, key: key as string[] };
}
