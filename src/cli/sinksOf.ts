import type { TributaryConfig } from '../config/index.js';
import { NotFoundError } from '../errors.js';
import { type ResolvedSink, resolveSinks } from '../projections/index.js';

/** The config's sinks, checked against the views of its projections (a ConfigError says what to fix). */
export function configuredSinks(config: TributaryConfig): ResolvedSink[] {
  return resolveSinks(
    config.sinks,
    (config.projections ?? []).flatMap((projection) => projection.views),
  );
}

/** The sink named `name` in the config, or a NotFoundError listing the known ones. */
export function findSink(config: TributaryConfig, name: string): ResolvedSink {
  const sinks = configuredSinks(config);
  const found = sinks.find((sink) => sink.name === name);
  if (!found) {
    throw new NotFoundError(
      'sink',
      name,
      sinks.length
        ? `Known sinks: ${sinks.map((s) => s.name).join(', ')}.`
        : 'Configure sinks in tributary.config.ts: `sinks: { name: { view, backend } }`.',
    );
  }
  return found;
}
