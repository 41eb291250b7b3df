import type { ColumnDefinition } from '../projections/index.js';

/**
 * A view definition of any shape. `AnyView<Columns>` uses `keyof Columns`, which makes
 * it invariant: a concrete definition does not widen to `AnyView`, but does to this.
 */
export interface AnyView {
  name: string;
  columns: Readonly<Record<string, ColumnDefinition>>;
  primaryKey: readonly string[];
  description?: string;
}
