import { Command, InvalidArgumentError } from 'commander';

/**
 * The `tributary` command line. Every command is declared here (names, descriptions,
 * options); its implementation is loaded only when it runs, so that `--help` and a
 * mistyped command answer at once instead of loading the GraphQL server and the
 * PostgreSQL driver first.
 */
export function createProgram(): Command {
  const program = new Command()
    .name('tributary')
    .description(
      'Event sourcing and change data capture on PostgreSQL: one log, exactly-once projections, GraphQL views.',
    )
    .option('-c, --config <file>', 'config file (default: tributary.config.ts in the current directory)')
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('migrate')
    .description(
      "Apply Tributary's pending migrations to the database (safe to run from several processes at once).",
    )
    .action(async (_options: object, command: Command) =>
      (await import('./commands/migrate.js')).migrateCommand(command),
    );

  program
    .command('dev')
    .description(
      'Run everything locally for development: the embedded PostgreSQL (unless DATABASE_URL is set), migrated, the projections and the GraphQL API WITHOUT authentication. Without a tributary.config.ts in the current directory it runs the shop demo with a generated workload. Other commands run from the same directory find this instance (database, config, sources) by themselves.',
    )
    .option('-p, --port <port>', 'API port (default: api.port or 4000; a free one if taken)', port)
    .option('--no-workload', 'with the demo: do not generate orders and product changes')
    .action(async (options: { port?: number; workload: boolean }, command: Command) =>
      (await import('./commands/dev.js')).devCommand(options, command),
    );

  program
    .command('start')
    .description(
      'Run the change data capture of the configured sources, the projection workers and the GraphQL API until stopped. Start as many processes as you like: each projection runs in one of them at a time, and another takes over when it dies.',
    )
    .option(
      '--no-api',
      'run the capture and the projection workers only, without the GraphQL API (/healthz, /readyz and /metrics then on metrics.port, 9464)',
    )
    .action(async (options: { api: boolean }, command: Command) =>
      (await import('./commands/start.js')).startCommand(options, command),
    );

  program
    .command('serve')
    .description(
      'Serve the GraphQL API only (queries, subscriptions over SSE and WebSocket, appendEvents, /healthz, /readyz, /metrics); projections run elsewhere (`tributary start`).',
    )
    .option('-p, --port <port>', 'port to listen on (default: api.port, TRIBUTARY_API_PORT or 4000)', port)
    .option('--host <host>', 'address to bind (default: api.host, TRIBUTARY_API_HOST or 127.0.0.1)')
    .action(async (options: { port?: number; host?: string }, command: Command) =>
      (await import('./commands/serve.js')).serveCommand(options, command),
    );

  program
    .command('status')
    .description(
      'Show each projection: state, version, position, lag, throughput, lease holder and last error.',
    )
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { json?: boolean }, command: Command) =>
      (await import('./commands/status.js')).statusCommand(options, command),
    );

  program
    .command('schema')
    .description(
      'Print the GraphQL schema (SDL) the API serves for the configured views, e.g. for code generation.',
    )
    .action(async (_options: object, command: Command) =>
      (await import('./commands/schema.js')).schemaCommand(command),
    );

  program
    .command('rebuild')
    .description(
      'Rebuild a projection from the start of the log into shadow tables while the current views keep serving, then swap them in atomically. Interrupted, it continues where it stopped.',
    )
    .argument('<projection>', 'projection name')
    .option(
      '--in-place',
      'truncate the live views and replay into them (development only: readers see a partial view)',
    )
    .action(async (name: string, options: { inPlace?: boolean }, command: Command) =>
      (await import('./commands/rebuild.js')).rebuildCommand(name, options, command),
    );

  program
    .command('replay')
    .description(
      "Re-deliver part of the log (up to the checkpoint) to a projection declared with replay: 'idempotent', e.g. to push a sink again after a fix. Projections whose handler accumulates (counters, sums) must be rebuilt instead.",
    )
    .argument('<projection>', 'projection name')
    .requiredOption(
      '--from <position|timestamp>',
      'a log position, or an ISO-8601 time (the first event recorded at or after it)',
    )
    .option('--force', "replay even though the projection does not declare replay: 'idempotent'")
    .action(async (name: string, options: { from: string; force?: boolean }, command: Command) =>
      (await import('./commands/replay.js')).replayCommand(name, options, command),
    );

  const deadletters = program
    .command('deadletters')
    .description('Inspect, retry or discard events that a projection with onError: "dead-letter" set aside.');
  deadletters
    .command('list')
    .description('List dead letters in log order.')
    .option('-p, --projection <name>', 'only this projection')
    .option('--json', 'print JSON (with the envelopes)')
    .action(async (options: { projection?: string; json?: boolean }, command: Command) =>
      (await import('./commands/deadletters.js')).listDeadLettersCommand(options, command),
    );
  deadletters
    .command('retry')
    .description(
      'Run the handler again on these dead letters; each one that succeeds is applied and removed.',
    )
    .argument('[ids...]', 'dead-letter ids')
    .option('--all', 'every dead letter (of --projection, if given)')
    .option('-p, --projection <name>', 'with --all: only this projection')
    .action(async (ids: string[], options: { all?: boolean; projection?: string }, command: Command) =>
      (await import('./commands/deadletters.js')).retryDeadLettersCommand(ids, options, command),
    );
  deadletters
    .command('discard')
    .description('Delete these dead letters for good.')
    .argument('[ids...]', 'dead-letter ids')
    .option('--all', 'every dead letter (of --projection, if given)')
    .option('-p, --projection <name>', 'with --all: only this projection')
    .action(async (ids: string[], options: { all?: boolean; projection?: string }, command: Command) =>
      (await import('./commands/deadletters.js')).discardDeadLettersCommand(ids, options, command),
    );

  const sinks = program
    .command('sinks')
    .description('Search indexes kept in step with views: where they stand, reindex, pause, resume.');
  sinks
    .command('status')
    .description(
      'Per sink: state, index, lag in changes and seconds, documents per second, errors, dead letters, lease holder, a build in progress.',
    )
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { json?: boolean }, command: Command) =>
      (await import('./commands/sinks.js')).sinksStatusCommand(options, command),
    );
  sinks
    .command('reindex <sink>')
    .description(
      'Build a new index from the view beside the one that serves, catch it up, swap it in atomically and drop the old one; shows its progress.',
    )
    .option('--no-wait', 'only ask for it, do not follow its progress')
    .action(async (name: string, options: { wait: boolean }, command: Command) =>
      (await import('./commands/sinks.js')).sinkReindexCommand(name, options, command),
    );
  sinks
    .command('pause <sink>')
    .description('Stop applying changes to the index (its checkpoint keeps them for later).')
    .action(async (name: string, _options: object, command: Command) =>
      (await import('./commands/sinks.js')).sinkRequestCommand('pause', name, command),
    );
  sinks
    .command('resume <sink>')
    .description('Apply changes to the index again, from where it paused.')
    .action(async (name: string, _options: object, command: Command) =>
      (await import('./commands/sinks.js')).sinkRequestCommand('resume', name, command),
    );

  const cdc = program
    .command('cdc')
    .description(
      'Change data capture: run it, see where each source stands, snapshot tables, drop a source.',
    );
  cdc
    .command('status')
    .description(
      'Per source: whether capture runs, slot, confirmed LSN, lag and WAL held on the source, snapshot progress, last error, warnings.',
    )
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { json?: boolean }, command: Command) =>
      (await import('./commands/cdc.js')).cdcStatusCommand(options, command),
    );
  cdc
    .command('drop <source>')
    .description(
      "Forget a source's checkpoint, and drop its replication slot and publication if this log created them (the log keeps its events); the next run takes a new snapshot.",
    )
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (name: string, options: { yes?: boolean }, command: Command) =>
      (await import('./commands/cdc.js')).cdcDropCommand(name, options, command),
    );
  cdc
    .command('snapshot <source> [tables...]')
    .description(
      "Take an incremental snapshot of the source's tables (all of them, or those named) while the capture runs: streaming goes on, no table is locked. The running capture takes it; this command shows its progress.",
    )
    .option('--no-wait', 'return once the snapshot is requested')
    .option('--cancel', "cancel the source's requested or running snapshots (of the tables named, or all)")
    .action(
      async (
        name: string,
        tables: string[],
        options: { wait: boolean; cancel?: boolean },
        command: Command,
      ) => (await import('./commands/cdc.js')).cdcSnapshotCommand(name, tables, options, command),
    );
  cdc
    .command('run')
    .description(
      'Capture the configured sources into the log until stopped (Ctrl-C); /healthz, /readyz and /metrics on metrics.port (9464).',
    )
    .action(async (_options: object, command: Command) =>
      (await import('./commands/cdc.js')).cdcRunCommand(command),
    );

  return program;
}

function port(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > 65535) {
    throw new InvalidArgumentError('a port number from 0 to 65535');
  }
  return parsed;
}
