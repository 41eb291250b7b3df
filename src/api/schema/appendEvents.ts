import type { EventInput, JsonObject } from '../../ingest/index.js';
import type { Builder } from './builder.js';
import { type SchemaOptions, scoped } from './context.js';

/** `appendEvents(streamId, expectedVersion, events)`: the log's append, with its typed errors. */
export function appendEventsField(builder: Builder, options: SchemaOptions): void {
  const eventInput = builder.inputRef<{
    type: string;
    data: unknown;
    metadata?: unknown;
    id?: string | null;
    eventTime?: string | null;
  }>('EventInput');
  eventInput.implement({
    fields: (t) => ({
      type: t.string({ required: true }),
      data: t.field({ type: 'JSON', required: true }),
      metadata: t.field({ type: 'JSON', required: false }),
      id: t.string({ required: false, description: 'Idempotency key, unique in the stream.' }),
      eventTime: t.field({ type: 'DateTime', required: false }),
    }),
  });
  const appendResult = builder
    .objectRef<{ position: string; nextExpectedVersion: number; appended: boolean }>('AppendResult')
    .implement({
      fields: (t) => ({
        position: t.exposeString('position', {
          description: 'Log position of the last event; pass it as minPosition to read your writes.',
        }),
        nextExpectedVersion: t.exposeInt('nextExpectedVersion'),
        appended: t.exposeBoolean('appended', {
          description: 'False when every event id was already in the stream (an idempotent retry).',
        }),
      }),
    });
  builder.mutationField('appendEvents', (t) =>
    t.field({
      type: appendResult,
      args: {
        streamId: t.arg.string({ required: true }),
        expectedVersion: t.arg({ type: 'ExpectedVersion', required: false, defaultValue: 'any' }),
        events: t.arg({ type: [eventInput], required: true }),
      },
      resolve: scoped('append', (_root, args) => {
        const events: EventInput[] = args.events.map((event) => ({
          type: event.type,
          data: event.data as JsonObject,
          ...(event.metadata != null ? { metadata: event.metadata as JsonObject } : {}),
          ...(event.id != null ? { id: event.id } : {}),
          ...(event.eventTime != null ? { eventTime: event.eventTime } : {}),
        }));
        return options.store.append(args.streamId, events, {
          expectedVersion: args.expectedVersion ?? 'any',
        });
      }),
    }),
  );
}
