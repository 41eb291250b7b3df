import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

const BIN = path.resolve('bin/tributary.js');

/** Writes `{ sources }` as a config file in `dir` and returns its path. */
export async function writeSourcesConfig(
  dir: string,
  name: string,
  sources: Record<string, unknown>,
): Promise<string> {
  const file = path.join(dir, `${name}.config.mjs`);
  await writeFile(file, `export default ${JSON.stringify({ sources }, null, 2)};\n`);
  return file;
}

export interface CaptureProcess {
  process: ChildProcess;
  /** Resolves when a log line containing one of `texts` appears; rejects when the child exits first or after `timeoutMs`. */
  seen(texts: string[], timeoutMs?: number): Promise<void>;
  exited: Promise<void>;
  /** Everything the process logged so far. */
  output(): string;
}

/** `tributary --config <config> cdc run` as a child process, logging at info level on stderr. */
export function runCapture(config: string, databaseUrl: string, nodeOptions = ''): CaptureProcess {
  const child = spawn(process.execPath, [BIN, '--config', config, 'cdc', 'run'], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      TRIBUTARY_LOG_LEVEL: 'info',
      NODE_OPTIONS: nodeOptions,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  const waiters: Array<{ texts: string[]; resolve: () => void }> = [];
  const found = (texts: string[]) => texts.some((text) => output.includes(text));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    output += chunk;
    if (process.env.CDC_DEBUG) process.stderr.write(chunk);
    for (const waiter of [...waiters]) {
      if (found(waiter.texts)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    exited,
    output: () => output,
    seen: (texts, timeoutMs = 60_000) =>
      found(texts)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            const timer = setTimeout(
              () =>
                reject(
                  new Error(
                    `capture did not log '${texts.join("' or '")}' within ${timeoutMs} ms:\n${output.slice(-2000)}`,
                  ),
                ),
              timeoutMs,
            );
            waiters.push({
              texts,
              resolve: () => {
                clearTimeout(timer);
                resolve();
              },
            });
            void exited.then(() => {
              clearTimeout(timer);
              reject(
                new Error(`capture exited before logging '${texts.join("' or '")}':\n${output.slice(-2000)}`),
              );
            });
          }),
  };
}

/** Runs one `tributary` command to its end. */
export function runCli(
  config: string,
  databaseUrl: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, '--config', config, ...args], {
      env: { ...process.env, DATABASE_URL: databaseUrl, TRIBUTARY_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Kills the process with SIGKILL and waits for it to be gone. */
export async function kill9(child: CaptureProcess): Promise<void> {
  child.process.kill('SIGKILL');
  await child.exited;
}
