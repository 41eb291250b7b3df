import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The `tributary` command as installed: it runs the compiled CLI (test/buildSetup.ts builds it). */
export const BIN = fileURLToPath(new URL('../../bin/tributary.js', import.meta.url));

/**
 * What a test config imports Tributary from: the build the CLI runs, so that the config's
 * projections and the CLI share one copy of the package.
 */
export const PACKAGE_ENTRY = fileURLToPath(new URL('../../dist/index.js', import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tributary <args>` to completion (at most `timeoutMs`). */
export function runCli(
  args: readonly string[],
  options: { cwd: string; env?: Record<string, string | undefined>; timeoutMs?: number },
): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        cwd: options.cwd,
        env: cliEnv(options.env),
        timeout: options.timeoutMs ?? 120_000,
      },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** The environment of a CLI run: this process's, quieter, with `overrides` (undefined removes a variable). */
export function cliEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn' };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}
