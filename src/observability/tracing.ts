import { type Attributes, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';

/**
 * OpenTelemetry spans through `@opentelemetry/api` only: without an SDK registered by the
 * application (see the README), every span is a no-op and costs next to nothing.
 */
export function tracer() {
  return trace.getTracer('tributary');
}

/** Runs `work` in an active span named `name`; a throw marks the span as an error and is rethrown. */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(name, { attributes, kind: SpanKind.INTERNAL }, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      failSpan(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** A span for work that already happened, from `startTime` (ms since the epoch) to now. */
export function recordSpan(name: string, startTime: number, attributes: Attributes): void {
  tracer().startSpan(name, { attributes, startTime, kind: SpanKind.INTERNAL }).end();
}

export function failSpan(span: Span, error: unknown): void {
  if (error instanceof Error) span.recordException(error);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}
