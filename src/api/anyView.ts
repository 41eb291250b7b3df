import type { AnyView as ProjectionView } from '../projections/index.js';

/** A view definition of any shape, as projections list them (plus the optional description). */
export type AnyView = ProjectionView & { description?: string };
