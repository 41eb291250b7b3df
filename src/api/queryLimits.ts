import {
  type FragmentDefinitionNode,
  GraphQLError,
  Kind,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';

export interface QueryLimits {
  maxDepth: number;
  maxAliases: number;
  maxComplexity: number;
  /** Page size assumed for a connection whose first/last is a variable or absent. */
  defaultPageSize: number;
}

const limitError = (message: string, limit: string) =>
  new GraphQLError(message, { extensions: { code: 'QUERY_TOO_COMPLEX', limit } });

/**
 * Rejects a document before it runs when it nests too deep, uses too many aliases, or would
 * fetch too much (every field costs 1, times the page sizes of the connections above it).
 * Fragments are followed; a fragment cycle is left to GraphQL's own validation.
 */
export function queryLimitRules(limits: QueryLimits): ValidationRule[] {
  return [
    (context: ValidationContext) => ({
      Document(document) {
        const fragments = new Map<string, FragmentDefinitionNode>();
        for (const definition of document.definitions) {
          if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
        }
        let aliases = 0;
        const visiting = new Set<string>();
        // Returns [depth, cost] of a selection set; stops early once a limit is exceeded.
        const walk = (set: SelectionSetNode, depth: number, multiplier: number): [number, number] => {
          if (depth > limits.maxDepth) return [depth, 0];
          let deepest = depth;
          let cost = 0;
          for (const selection of set.selections) {
            if (selection.kind === Kind.FIELD) {
              if (selection.alias) aliases++;
              cost += multiplier;
              if (selection.selectionSet) {
                const size = pageSize(selection.arguments ?? [], limits.defaultPageSize);
                const [d, c] = walk(selection.selectionSet, depth + 1, multiplier * size);
                deepest = Math.max(deepest, d);
                cost += c;
              }
            } else if (selection.kind === Kind.INLINE_FRAGMENT) {
              const [d, c] = walk(selection.selectionSet, depth, multiplier);
              deepest = Math.max(deepest, d);
              cost += c;
            } else {
              const name = selection.name.value;
              const fragment = fragments.get(name);
              if (!fragment || visiting.has(name)) continue;
              visiting.add(name);
              const [d, c] = walk(fragment.selectionSet, depth, multiplier);
              visiting.delete(name);
              deepest = Math.max(deepest, d);
              cost += c;
            }
            if (cost > limits.maxComplexity || aliases > limits.maxAliases) break;
          }
          return [deepest, cost];
        };
        for (const definition of document.definitions) {
          if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
          const [depth, cost] = walk(definition.selectionSet, 1, 1);
          if (depth > limits.maxDepth) {
            context.reportError(
              limitError(`Query is nested deeper than ${limits.maxDepth} levels.`, 'maxDepth'),
            );
          } else if (aliases > limits.maxAliases) {
            context.reportError(
              limitError(`Query uses more than ${limits.maxAliases} aliases.`, 'maxAliases'),
            );
          } else if (cost > limits.maxComplexity) {
            context.reportError(
              limitError(
                `Query complexity ${cost} exceeds ${limits.maxComplexity}; ask for smaller pages or fewer fields.`,
                'maxComplexity',
              ),
            );
          }
          if (depth > limits.maxDepth || aliases > limits.maxAliases || cost > limits.maxComplexity) return;
        }
      },
    }),
  ];
}

function pageSize(
  args: readonly { name: { value: string }; value: { kind: string } }[],
  fallback: number,
): number {
  for (const arg of args) {
    if (arg.name.value !== 'first' && arg.name.value !== 'last') continue;
    const value = arg.value as { kind: string; value?: string };
    if (value.kind === Kind.INT && value.value !== undefined) return Math.max(1, Number(value.value));
    return fallback;
  }
  return 1;
}
