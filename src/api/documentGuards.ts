import {
  type DocumentNode,
  GraphQLError,
  type GraphQLSchema,
  Kind,
  NoSchemaIntrospectionCustomRule,
  parse,
  type TypeNode,
  type ValidationRule,
  validate,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ValidationError } from '../errors.js';
import type { ApiLimitsConfig } from './apiConfig.js';
import { assertWhereSize } from './filter.js';
import { checkFieldMerges, checkQueryLimits, type QueryLimits, validationRules } from './queryLimits.js';

export interface DocumentGuardOptions {
  schema: GraphQLSchema;
  limits: ApiLimitsConfig;
  introspection: boolean;
  defaultPageSize: number;
  /** The log's limit, enforced before an append's events are even coerced. */
  maxEventsPerAppend: number;
}

/**
 * What a GraphQL request may cost, checked in the order it would cost it: the variables'
 * nesting, the document's tokens, its measure before validation (linear, see
 * queryLimits.ts), then variables whose coercion would be expensive (a huge `where`, an
 * append over the limit) before execution coerces them.
 */
export function documentGuards(options: DocumentGuardOptions): Plugin {
  const checks = documentChecks(options);
  return {
    onParams({ params, setResult }) {
      const refusal = checks.deepVariables(params.variables);
      if (refusal) setResult({ errors: [refusal] });
    },
    onParse({ setParseFn }) {
      setParseFn((source, parseOptions) => parse(source, { ...parseOptions, maxTokens: checks.maxTokens }));
    },
    onValidate({ params, setResult, setValidationFn }) {
      // Measured first, in linear time: GraphQL's own rules only see documents within the limits.
      const conflicts = checks.measure(params.documentAST);
      if (conflicts.length > 0) {
        setResult(conflicts);
        return;
      }
      setValidationFn((served, document, _rules, validateOptions, typeInfo) =>
        validate(served, document, checks.rules, validateOptions, typeInfo),
      );
    },
    // Before GraphQL coerces variables (which costs far more than counting them).
    onExecute({ args, setResultAndStopExecution }) {
      const refusal = checks.oversized(args.document, args.variableValues);
      if (refusal) setResultAndStopExecution({ errors: [refusal] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const refusal = checks.oversized(args.document, args.variableValues);
      if (refusal) setResultAndStopExecution({ errors: [refusal] });
    },
  };
}

/** The checks of documentGuards, for paths that serve a request without Yoga (compiledReads.ts). */
export interface DocumentChecks {
  maxTokens: number;
  /** The validation rules: GraphQL's, the limits' own, and no introspection when it is off. */
  rules: readonly ValidationRule[];
  deepVariables(variables: unknown): GraphQLError | undefined;
  /** The document's measure against the limits, then field merges (in linear time). */
  measure(document: DocumentNode): readonly GraphQLError[];
  oversized(
    document: DocumentNode,
    variables: Record<string, unknown> | null | undefined,
  ): GraphQLError | undefined;
}

export function documentChecks(options: DocumentGuardOptions): DocumentChecks {
  const { limits } = options;
  const maxVariablesDepth = limits.maxVariablesDepth ?? 64;
  const queryLimits: QueryLimits = {
    maxDepth: limits.maxDepth ?? 12,
    maxAliases: limits.maxAliases ?? 30,
    maxComplexity: limits.maxComplexity ?? 50_000,
    maxFields: limits.maxFields ?? 2000,
    defaultPageSize: options.defaultPageSize,
    introspection: options.introspection,
  };
  return {
    maxTokens: limits.maxTokens ?? 5000,
    rules: [
      ...validationRules(options.schema),
      ...(options.introspection ? [] : [NoSchemaIntrospectionCustomRule]),
    ],
    deepVariables: (variables) =>
      jsonDepth(variables, maxVariablesDepth) > maxVariablesDepth
        ? new GraphQLError(`Variables nest deeper than ${maxVariablesDepth} levels.`, {
            extensions: { code: 'VALIDATION_FAILED', limit: 'maxVariablesDepth' },
          })
        : undefined,
    measure: (document) => {
      const refused = checkQueryLimits(document, queryLimits);
      return refused.length > 0 ? refused : checkFieldMerges(document);
    },
    oversized: (document, variables) => oversizedVariables(document, variables, options.maxEventsPerAppend),
  };
}

function oversizedVariables(
  document: DocumentNode,
  variables: Record<string, unknown> | null | undefined,
  maxEventsPerAppend: number,
): GraphQLError | undefined {
  if (!variables) return undefined;
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
    for (const variable of definition.variableDefinitions ?? []) {
      const value = variables[variable.variable.name.value];
      const type = namedType(variable.type);
      try {
        if (type.endsWith('Where')) assertWhereSize(value);
        else if (type === 'EventInput' && Array.isArray(value) && value.length > maxEventsPerAppend) {
          throw new ValidationError(
            `An append may carry at most ${maxEventsPerAppend} events; got ${value.length}.`,
            {
              field: 'events',
              hint: 'Split it into several appends.',
            },
          );
        }
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        return new GraphQLError(error.message, {
          extensions: { code: error.code, ...(error.field ? { field: error.field } : {}) },
        });
      }
    }
  }
  return undefined;
}

function namedType(type: TypeNode): string {
  return type.kind === Kind.NAMED_TYPE ? type.name.value : namedType(type.type);
}

/** Nesting depth of a JSON value, looked at no deeper than `limit + 1` (so recursion stays shallow). */
function jsonDepth(value: unknown, limit: number): number {
  if (value === null || typeof value !== 'object') return 0;
  if (limit < 0) return 1;
  let deepest = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (item !== null && typeof item === 'object') deepest = Math.max(deepest, jsonDepth(item, limit - 1));
      if (deepest > limit) break;
    }
  } else {
    for (const key in value) {
      const item = (value as Record<string, unknown>)[key];
      if (item !== null && typeof item === 'object') deepest = Math.max(deepest, jsonDepth(item, limit - 1));
      if (deepest > limit) break;
    }
  }
  return deepest + 1;
}
