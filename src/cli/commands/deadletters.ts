import type { Command } from 'commander';
import { closePool, createPool } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
import { discardDeadLetters, listDeadLetters, retryDeadLetters } from '../../projections/index.js';
import { type CommandContext, openContext } from '../context.js';

async function withPool<T>(
  command: Command,
  fn: (context: CommandContext, pool: ReturnType<typeof createPool>) => Promise<T>,
) {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 2 });
  try {
    return await fn(context, pool);
  } finally {
    await closePool(pool);
    await context.database.stop();
  }
}

async function selectIds(
  pool: ReturnType<typeof createPool>,
  ids: string[],
  options: { all?: boolean; projection?: string },
) {
  if (ids.length > 0) {
    for (const id of ids)
      if (!/^\d+$/.test(id))
        throw new ValidationError(`'${id}' is not a dead-letter id.`, {
          hint: 'Ids are the numbers `tributary deadletters list` prints.',
        });
    return ids;
  }
  if (!options.all)
    throw new ValidationError('Name dead-letter ids, or pass --all (with --projection to limit it).');
  return (
    await listDeadLetters(pool, {
      ...(options.projection ? { projection: options.projection } : {}),
      limit: 100_000,
    })
  ).map((d) => d.id);
}

export async function listDeadLettersCommand(
  options: { projection?: string; json?: boolean },
  command: Command,
): Promise<void> {
  await withPool(command, async (_context, pool) => {
    const letters = await listDeadLetters(pool, options.projection ? { projection: options.projection } : {});
    if (options.json) return console.log(JSON.stringify(letters, null, 2));
    if (letters.length === 0) return console.log('No dead letters.');
    for (const d of letters) {
      console.log(
        `#${d.id}  ${d.projection}  ${d.position}  ${d.envelope.type} on ${d.envelope.streamId}  (${d.attempts} attempts, ${d.createdAt.toISOString()})\n    ${d.error.message}`,
      );
    }
  });
}

export async function retryDeadLettersCommand(
  ids: string[],
  options: { all?: boolean; projection?: string },
  command: Command,
): Promise<void> {
  await withPool(command, async (context, pool) => {
    const selected = await selectIds(pool, ids, options);
    const outcomes = await retryDeadLetters(pool, context.loaded.config.projections ?? [], selected, {
      ...(context.loaded.config.runner?.viewSchema
        ? { viewSchema: context.loaded.config.runner.viewSchema }
        : {}),
    });
    for (const o of outcomes) console.log(o.ok ? `#${o.id} applied` : `#${o.id} failed again: ${o.error}`);
    if (outcomes.some((o) => !o.ok)) process.exitCode = 1;
  });
}

export async function discardDeadLettersCommand(
  ids: string[],
  options: { all?: boolean; projection?: string },
  command: Command,
): Promise<void> {
  await withPool(command, async (_context, pool) => {
    const count = await discardDeadLetters(pool, await selectIds(pool, ids, options));
    console.log(`Discarded ${count} dead letter(s).`);
  });
}
