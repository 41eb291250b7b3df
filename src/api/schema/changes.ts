import type { EnumRef } from '@pothos/core';
import { isTributaryError, type TributaryError } from '../../errors.js';
import type { AnyView } from '../anyView.js';
import { type ChangeMessage, subscribeChanges } from '../subscribeChanges.js';
import type { Builder, SchemaTypes } from './builder.js';
import { type SchemaOptions, scoped } from './context.js';
import type { WhereInput } from './filters.js';
import type { RowType } from './rows.js';

export type ChangeOpEnum = EnumRef<
  PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>,
  'upsert' | 'delete' | 'reset',
  'upsert' | 'delete' | 'reset'
>;

export function changeOpEnum(builder: Builder): ChangeOpEnum {
  return builder.enumType('ChangeOp', {
    values: {
      UPSERT: { value: 'upsert', description: 'The row was inserted or replaced.' },
      DELETE: { value: 'delete', description: 'The row was deleted; `previous` holds it.' },
      RESET: { value: 'reset', description: 'The view was emptied (rebuild); re-query it.' },
    } as const,
  });
}

/** `<view>Changes(where, after, initialRows)`: history from the changelog, then live changes. */
export function changesField(
  builder: Builder,
  options: SchemaOptions,
  view: AnyView,
  names: { type: string; field: string },
  types: { row: RowType; where: WhereInput; changeOp: ChangeOpEnum },
): void {
  const change = builder.objectRef<ChangeMessage>(`${names.type}Change`).implement({
    fields: (t) => ({
      op: t.field({ type: types.changeOp, resolve: (m) => m.op }),
      cursor: t.exposeString('cursor', {
        description: 'Pass as `after` to resume right after this change.',
      }),
      key: t.field({ type: 'JSON', resolve: (m) => m.key }),
      row: t.field({ type: types.row, nullable: true, resolve: (m) => m.row }),
      previous: t.field({ type: types.row, nullable: true, resolve: (m) => m.previous }),
      initial: t.boolean({
        description: 'A current row sent before the changes (initialRows: true).',
        resolve: (m) => m.initial,
      }),
    }),
  });
  builder.subscriptionField(`${names.field}Changes`, (t) =>
    t.field({
      type: change,
      description: `Changes to '${view.name}': every change after \`after\` from the changelog, then live ones.`,
      args: {
        where: t.arg({ type: types.where, required: false }),
        after: t.arg.string({
          required: false,
          description: 'Resume after this cursor. Absent: start now.',
        }),
        initialRows: t.arg.boolean({
          required: false,
          defaultValue: false,
          description: 'Send the current rows first (initial: true), then the changes after them.',
        }),
      },
      subscribe: scoped('read', (_root, args, context) => {
        const abort = new AbortController();
        context.signal?.addEventListener('abort', () => abort.abort(), { once: true });
        return guard(
          subscribeChanges({
            pool: options.pool,
            tailer: options.tailer,
            schema: options.viewSchema,
            view,
            where: args.where,
            after: args.after,
            initialRows: args.initialRows ?? false,
            maxBuffer: options.subscriptionBuffer,
            signal: abort.signal,
          }),
          abort,
          options.onSubscription?.(view.name),
        );
      }),
      resolve: (message: ChangeMessage | { error: TributaryError }) => {
        if ('error' in message) throw message.error;
        return message;
      },
    }),
  );
}

/**
 * Wraps a change stream for GraphQL: a typed failure (overflow, expired cursor, bad cursor)
 * becomes a last message whose resolver throws it, so the client gets the error with its code
 * and `lastCursor`, then the end of the stream. Ending the subscription aborts the stream at
 * once, even while it waits for the next change. (Both transports wait for a message to be
 * written before taking the next, so a client that stops reading fills the stream's bounded
 * buffer, which ends it with SUBSCRIPTION_OVERFLOW.)
 */
function guard(
  source: AsyncGenerator<ChangeMessage>,
  abort: AbortController,
  done: (() => void) | undefined,
): AsyncIterableIterator<ChangeMessage | { error: TributaryError }> {
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    abort.abort();
    done?.();
    source.return(undefined).catch(() => {});
  };
  const iterator: AsyncIterableIterator<ChangeMessage | { error: TributaryError }> = {
    async next() {
      if (finished) return { done: true, value: undefined };
      try {
        const result = await source.next();
        if (result.done) finish();
        return result;
      } catch (error) {
        finish();
        if (isTributaryError(error)) return { done: false, value: { error } };
        throw error;
      }
    },
    async return() {
      finish();
      return { done: true, value: undefined };
    },
    async throw(error: unknown) {
      finish();
      throw error;
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
