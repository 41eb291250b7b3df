import type { Logger } from '../logger.js';

type Cleanup = () => Promise<void> | void;

/**
 * Graceful shutdown for long-running commands: on SIGINT or SIGTERM the cleanups
 * run in reverse order of registration (workers before the database), then the
 * process exits. A second signal exits at once.
 */
export function createLifecycle(logger: Logger) {
  const cleanups: Cleanup[] = [];
  let stopping: Promise<void> | undefined;
  let startup: Promise<unknown> = Promise.resolve();
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });

  let failure: unknown;

  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info('shutting down', { reason });
      // A signal during startup: let it finish, so that what it started is also stopped.
      await startup.catch(() => {});
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup();
        } catch (error) {
          logger.error('error during shutdown', { error });
        }
      }
      resolveStopped();
    })();
    return stopping;
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping !== undefined) {
      logger.warn('second signal: exiting without waiting', { signal });
      process.exit(130);
    }
    void shutdown(signal).then(() => process.exit(0));
  };

  return {
    /** Registers a cleanup; later ones run first. */
    add(cleanup: Cleanup) {
      cleanups.push(cleanup);
    },
    /** Installs the SIGINT/SIGTERM handlers for a command that runs until stopped. */
    handleSignals() {
      // Keeps the process alive until a shutdown finishes, whatever else holds the event loop.
      const keepAlive = setInterval(() => {}, 1 << 30);
      void stopped.then(() => clearInterval(keepAlive));
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    },
    /** Startup work a shutdown waits for before running the cleanups. */
    starting<T>(work: Promise<T>): Promise<T> {
      startup = work;
      return work;
    },
    /** True once a shutdown began (e.g. a signal arrived during startup). */
    get stopping() {
      return stopping !== undefined;
    },
    shutdown,
    /**
     * Stops everything because of an error nothing will fix by waiting (a source that cannot
     * be captured): the command then ends with the error and exit code 1.
     */
    fail(error: unknown) {
      failure ??= error;
      logger.warn('stopping everything: an error that waiting cannot fix', {
        code: (error as { code?: string })?.code,
      });
      void shutdown('failure').then(() => {
        // Exit even if a handle lingers; with none left the process ends before this fires.
        setTimeout(() => process.exit(1), 5000).unref();
      });
    },
    /** The error a `fail` stopped on, for the command to throw once `stopped` resolves. */
    get failure(): unknown {
      return failure;
    },
    /** Resolves once a shutdown has finished. */
    stopped,
  };
}

export type Lifecycle = ReturnType<typeof createLifecycle>;
