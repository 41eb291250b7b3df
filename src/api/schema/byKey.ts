import type { AnyView } from '../anyView.js';
import { queryByKey } from '../queryView.js';
import { type Builder, SCALAR_OF } from './builder.js';
import { type SchemaOptions, scoped } from './context.js';
import { readYourWrites } from './readYourWrites.js';
import type { RowType } from './rows.js';

/** `<view>ByKey(<key columns>, minPosition)`: one row, or null. */
export function byKeyField(
  builder: Builder,
  options: SchemaOptions,
  view: AnyView,
  field: string,
  row: RowType,
): void {
  builder.queryField(`${field}ByKey`, (t) =>
    t.field({
      type: row,
      nullable: true,
      args: {
        ...Object.fromEntries(
          view.primaryKey.map((name) => [
            name,
            t.arg({ type: SCALAR_OF[view.columns[name]!.type] as 'String', required: true }),
          ]),
        ),
        minPosition: t.arg.string({ required: false }),
      },
      resolve: scoped('read', async (_root, args, context) => {
        await readYourWrites(options, view.name, args.minPosition as string | undefined, context);
        return queryByKey(options.pool, options.viewSchema, view, args as Record<string, unknown>);
      }),
    }),
  );
}
