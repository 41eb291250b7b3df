import { context as otelContext, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { type DocumentNode, type ExecutionResult, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Metrics, OperationOutcome } from '../observability/index.js';
import { tracer } from '../observability/index.js';

/**
 * Counts every GraphQL operation, over HTTP, SSE and WebSocket alike, by operation name, type
 * and outcome (`ok`, `error` when the result carries errors, `refused` when it was not
 * executed: a syntax error, a failed validation, a limit), times queries and mutations, and
 * runs each operation in an OpenTelemetry span (`query LatestOrders`). Put it before the
 * plugins that may refuse an operation, so that it sees their refusals.
 */
export function observeOperations(metrics: Metrics): Plugin {
  return {
    onParse({ context }) {
      return ({ result }) => {
        if (!(result instanceof Error)) return;
        const params = (context as { params?: { operationName?: string } }).params;
        metrics.graphqlOperation({ operation: params?.operationName, type: 'unknown', outcome: 'refused' });
      };
    },
    onValidate({ params }) {
      return ({ valid }) => {
        if (valid) return;
        const { operation, type } = describe(params.documentAST, undefined);
        metrics.graphqlOperation({ operation, type, outcome: 'refused' });
      };
    },
    onExecute({ args, executeFn, setExecuteFn }) {
      const { operation, type } = describe(args.document, args.operationName);
      const span = startSpan(type, operation);
      const startedAt = performance.now();
      let executed = false;
      setExecuteFn((executeArgs) => {
        executed = true;
        return otelContext.with(trace.setSpan(otelContext.active(), span), () => executeFn(executeArgs));
      });
      return {
        onExecuteDone({ result }) {
          const outcome = !executed ? 'refused' : hasErrors(result) ? 'error' : 'ok';
          metrics.graphqlOperation(
            { operation, type, outcome },
            executed ? (performance.now() - startedAt) / 1000 : undefined,
          );
          endSpan(span, outcome);
        },
      };
    },
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      const { operation, type } = describe(args.document, args.operationName);
      const span = startSpan(type, operation);
      let subscribed = false;
      setSubscribeFn((subscribeArgs) => {
        subscribed = true;
        return otelContext.with(trace.setSpan(otelContext.active(), span), () => subscribeFn(subscribeArgs));
      });
      return {
        onSubscribeResult({ result }) {
          // Counted when it starts: a subscription that cannot start has a result with errors.
          const outcome = !subscribed ? 'refused' : hasErrors(result) ? 'error' : 'ok';
          metrics.graphqlOperation({ operation, type, outcome });
          endSpan(span, outcome);
        },
        onSubscribeError() {
          metrics.graphqlOperation({ operation, type, outcome: 'error' });
          endSpan(span, 'error');
        },
      };
    },
  };
}

function describe(
  document: DocumentNode,
  operationName: string | null | undefined,
): { operation: string | undefined; type: string } {
  const operation = getOperationAST(document, operationName ?? undefined);
  return {
    operation: operation?.name?.value ?? operationName ?? undefined,
    type: operation?.operation ?? 'unknown',
  };
}

function hasErrors(result: unknown): boolean {
  if (result === null || typeof result !== 'object' || Symbol.asyncIterator in result) return false;
  const errors = (result as ExecutionResult).errors;
  return errors !== undefined && errors.length > 0;
}

function startSpan(type: string, operation: string | undefined): Span {
  return tracer().startSpan(operation ? `${type} ${operation}` : type, {
    kind: SpanKind.INTERNAL,
    attributes: {
      'graphql.operation.type': type,
      ...(operation ? { 'graphql.operation.name': operation } : {}),
    },
  });
}

function endSpan(span: Span, outcome: OperationOutcome): void {
  span.setAttribute('tributary.outcome', outcome);
  if (outcome !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
  span.end();
}
