import type { TributaryConfig } from '../config/index.js';
import { NotFoundError } from '../errors.js';
import type { Projection } from '../projections/index.js';

/** The projection named `name` in the config, or a NotFoundError listing the known ones. */
export function findProjection(config: TributaryConfig, name: string): Projection {
  const projections = config.projections ?? [];
  const found = projections.find((projection) => projection.name === name);
  if (!found) {
    throw new NotFoundError(
      'projection',
      name,
      projections.length
        ? `Known projections: ${projections.map((p) => p.name).join(', ')}.`
        : 'Register projections in tributary.config.ts: `projections: [...]`.',
    );
  }
  return found;
}
