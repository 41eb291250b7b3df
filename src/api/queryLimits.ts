import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLSchema,
  isAbstractType,
  Kind,
  OverlappingFieldsCanBeMergedRule,
  print,
  type SelectionSetNode,
  specifiedRules,
  type ValidationRule,
} from 'graphql';

export interface QueryLimits {
  maxDepth: number;
  maxAliases: number;
  maxComplexity: number;
  /** Fields of the document once every fragment is expanded. */
  maxFields: number;
  /** Page size assumed for a connection whose first/last is a variable or absent. */
  defaultPageSize: number;
  /** Whether introspection is served: then the standard introspection query must pass. */
  introspection: boolean;
}

/** Introspection may nest deeper (type references chain `ofType`), but not expand types within types. */
const INTROSPECTION_MAX_DEPTH = 32;
/** `types { fields { ... } }` is one expansion; `fields { type { fields` would be a third. */
const INTROSPECTION_MAX_EXPANSIONS = 2;
const EXPANDING = new Set(['types', 'fields', 'inputFields', 'interfaces', 'possibleTypes', 'enumValues']);
const INTROSPECTION_TYPES = new Set([
  '__Schema',
  '__Type',
  '__Field',
  '__InputValue',
  '__EnumValue',
  '__Directive',
]);
/** Beyond this every measure is "too much": keeps sums of huge products finite and exact enough. */
const CAP = 1e12;

const limitError = (message: string, limit: string) =>
  new GraphQLError(message, { extensions: { code: 'QUERY_TOO_COMPLEX', limit } });
const invalid = (message: string) =>
  new GraphQLError(message, { extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });

/** What a selection set (or fragment) costs, fragments expanded; all measures relative to it. */
interface Measure {
  /** Levels of ordinary fields below it. */
  depth: number;
  /** Levels of introspection fields below it. */
  introspectionDepth: number;
  /** Type-expanding introspection lists along the deepest such path. */
  expansions: number;
  /** Every field costs 1, times the page sizes of the connections above it. */
  cost: number;
  aliases: number;
  fields: number;
}

const ZERO: Measure = { depth: 0, introspectionDepth: 0, expansions: 0, cost: 0, aliases: 0, fields: 0 };

/**
 * Measures a document before GraphQL validates it, in time linear in its size: each fragment
 * is measured once, however often it is spread, so a document whose spreads fan out
 * exponentially costs no more than one that does not. Unknown fragments and fragment cycles
 * are refused here too (they would make the expansion meaningless), and GraphQL's own
 * validation only runs on documents within the limits.
 */
export function checkQueryLimits(document: DocumentNode, limits: QueryLimits): GraphQLError[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const measured = new Map<string, Measure>();
  const visiting = new Set<string>();
  let failure: GraphQLError | undefined;

  const fragmentMeasure = (name: string): Measure => {
    const known = measured.get(name);
    if (known) return known;
    const fragment = fragments.get(name);
    if (!fragment) {
      failure ??= invalid(`Unknown fragment "${name.slice(0, 64)}".`);
      return ZERO;
    }
    if (visiting.has(name)) {
      failure ??= invalid(`Cannot spread fragment "${name.slice(0, 64)}" within itself.`);
      return ZERO;
    }
    visiting.add(name);
    const inIntrospection = INTROSPECTION_TYPES.has(fragment.typeCondition.name.value);
    const measure = measureSet(fragment.selectionSet, inIntrospection);
    visiting.delete(name);
    measured.set(name, measure);
    return measure;
  };

  const measureSet = (set: SelectionSetNode, inIntrospection: boolean): Measure => {
    const total = { ...ZERO };
    const add = (m: Measure, multiplier: number) => {
      total.depth = Math.max(total.depth, m.depth);
      total.introspectionDepth = Math.max(total.introspectionDepth, m.introspectionDepth);
      total.expansions = Math.max(total.expansions, m.expansions);
      total.cost = Math.min(CAP, total.cost + multiplier * m.cost);
      total.aliases = Math.min(CAP, total.aliases + m.aliases);
      total.fields = Math.min(CAP, total.fields + m.fields);
    };
    for (const selection of set.selections) {
      if (failure) break;
      if (selection.kind === Kind.FIELD) add(measureField(selection, inIntrospection), 1);
      else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const condition = selection.typeCondition?.name.value;
        add(
          measureSet(
            selection.selectionSet,
            condition ? INTROSPECTION_TYPES.has(condition) : inIntrospection,
          ),
          1,
        );
      } else add(fragmentMeasure(selection.name.value), 1);
    }
    return total;
  };

  const measureField = (field: FieldNode, inIntrospection: boolean): Measure => {
    const name = field.name.value;
    const introspective = inIntrospection || name === '__schema' || name === '__type';
    if (!field.selectionSet) {
      const level = introspective ? { introspectionDepth: 1 } : { depth: 1 };
      return { ...ZERO, ...level, cost: 1, aliases: field.alias ? 1 : 0, fields: 1 };
    }
    const own = { aliases: field.alias ? 1 : 0 };
    if (introspective) {
      const below = measureSet(field.selectionSet, true);
      return {
        depth: 0,
        introspectionDepth: below.introspectionDepth + 1,
        expansions: below.expansions + (EXPANDING.has(name) ? 1 : 0),
        cost: Math.min(CAP, 1 + below.cost),
        aliases: Math.min(CAP, own.aliases + below.aliases),
        fields: Math.min(CAP, 1 + below.fields),
      };
    }
    const size = pageSize(field, limits.defaultPageSize);
    const below = measureSet(field.selectionSet, false);
    return {
      depth: below.depth + 1,
      introspectionDepth: below.introspectionDepth,
      expansions: below.expansions,
      cost: Math.min(CAP, 1 + size * below.cost),
      aliases: Math.min(CAP, own.aliases + below.aliases),
      fields: Math.min(CAP, 1 + below.fields),
    };
  };

  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
    const measure = measureSet(definition.selectionSet, false);
    if (failure) return [failure];
    if (measure.depth > limits.maxDepth) {
      return [limitError(`Query is nested deeper than ${limits.maxDepth} levels.`, 'maxDepth')];
    }
    if (measure.aliases > limits.maxAliases) {
      return [limitError(`Query uses more than ${limits.maxAliases} aliases.`, 'maxAliases')];
    }
    if (measure.fields > limits.maxFields) {
      return [
        limitError(
          `Query selects more than ${limits.maxFields} fields once its fragments are expanded.`,
          'maxFields',
        ),
      ];
    }
    if (measure.cost > limits.maxComplexity) {
      return [
        limitError(
          `Query complexity ${measure.cost >= CAP ? 'beyond any limit' : measure.cost} exceeds ${limits.maxComplexity}; ask for smaller pages or fewer fields.`,
          'maxComplexity',
        ),
      ];
    }
    if (measure.introspectionDepth > 0) {
      // Refused by NoSchemaIntrospectionCustomRule when introspection is off; bounded here when on.
      if (limits.introspection && measure.introspectionDepth > INTROSPECTION_MAX_DEPTH) {
        return [
          limitError(
            `Introspection is nested deeper than ${INTROSPECTION_MAX_DEPTH} levels.`,
            'introspectionDepth',
          ),
        ];
      }
      if (limits.introspection && measure.expansions > INTROSPECTION_MAX_EXPANSIONS) {
        return [
          limitError(
            'Introspection expands types within types (e.g. fields { type { fields } }); ask for one type at a time with __type(name:).',
            'introspectionExpansions',
          ),
        ];
      }
    }
  }
  // Fragments that no operation spreads still cost validation time: measure them too.
  for (const name of fragments.keys()) {
    fragmentMeasure(name);
    if (failure) return [failure];
  }
  return [];
}

function pageSize(field: FieldNode, fallback: number): number {
  for (const arg of field.arguments ?? []) {
    if (arg.name.value !== 'first' && arg.name.value !== 'last') continue;
    const value = arg.value;
    if (value.kind === Kind.INT) return Math.max(1, Number(value.value));
    return fallback;
  }
  return 1;
}

/**
 * GraphQL's rule that same-named fields can merge compares every pair of them, recursively:
 * hundreds of repeated fields cost seconds. In a schema without interfaces or unions, fields
 * that share a response name in one selection set must be the same field with the same
 * arguments, so merging them into one tree (as execution does) checks the same thing in
 * linear time. With abstract types present, GraphQL's own rule stays.
 */
export function validationRules(schema: GraphQLSchema): readonly ValidationRule[] {
  const abstract = Object.values(schema.getTypeMap()).some(
    (type) => !type.name.startsWith('__') && isAbstractType(type),
  );
  return abstract
    ? specifiedRules
    : specifiedRules.filter((rule) => rule !== OverlappingFieldsCanBeMergedRule);
}

interface Merged {
  field: string;
  args: string;
  children: Map<string, Merged>;
}

/** Fields that share a response name but differ (another field, or other arguments). */
export function checkFieldMerges(document: DocumentNode): GraphQLError[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  let conflict: GraphQLError | undefined;
  const merge = (set: SelectionSetNode, into: Map<string, Merged>, expanding: Set<string>) => {
    for (const selection of set.selections) {
      if (conflict) return;
      if (selection.kind === Kind.INLINE_FRAGMENT) merge(selection.selectionSet, into, expanding);
      else if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const fragment = fragments.get(selection.name.value);
        if (!fragment || expanding.has(fragment.name.value)) continue; // refused by the measure
        expanding.add(fragment.name.value);
        merge(fragment.selectionSet, into, expanding);
        expanding.delete(fragment.name.value);
      } else {
        const responseName = selection.alias?.value ?? selection.name.value;
        const args = argumentsText(selection);
        let node = into.get(responseName);
        if (!node) {
          node = { field: selection.name.value, args, children: new Map() };
          into.set(responseName, node);
        } else if (node.field !== selection.name.value || node.args !== args) {
          const reason =
            node.field !== selection.name.value
              ? `"${node.field}" and "${selection.name.value}" are different fields`
              : 'they have differing arguments';
          conflict = new GraphQLError(
            `Fields "${responseName.slice(0, 64)}" conflict because ${reason}. Use different aliases on the fields to fetch both if this was intentional.`,
            { nodes: [selection], extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } },
          );
          return;
        }
        if (selection.selectionSet) merge(selection.selectionSet, node.children, expanding);
      }
    }
  };
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION) merge(definition.selectionSet, new Map(), new Set());
    if (conflict) return [conflict];
  }
  return [];
}

function argumentsText(field: FieldNode): string {
  const args = field.arguments ?? [];
  if (args.length === 0) return '';
  return [...args]
    .sort((a, b) => (a.name.value < b.name.value ? -1 : 1))
    .map((arg) => `${arg.name.value}:${print(arg.value)}`)
    .join(',');
}
