// Child process of bench/api.ts: opens the subscribers, so their client-side work runs beside
// the server rather than on its event loop (and their sockets count against their own file
// limit), and reports change-to-delivery latencies.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const { url, subscribers, changes } = JSON.parse(process.env.BENCH_SUBSCRIBERS!) as {
  url: string;
  subscribers: number;
  changes: number;
};
const send = (message: unknown) => process.send!(message);
const latencies: number[] = [];
let attached = 0;
// Opened in batches, each connected before the next starts: 10,000 handshakes at once would
// outlast the server's header timeout on a busy machine.
const BATCH = 250;
const clients: ReturnType<typeof createClient>[] = [];
for (let start = 0; start < subscribers; start += BATCH) {
  const batch = Array.from({ length: Math.min(BATCH, subscribers - start) }, () => {
    let connected!: () => void;
    const ready = new Promise<void>((resolve) => {
      connected = resolve;
    });
    const client = createClient({
      url,
      webSocketImpl: WebSocket,
      retryAttempts: 5,
      lazy: false,
      on: {
        connected: () => {
          send({ connected: ++attached });
          connected();
        },
      },
    });
    clients.push(client);
    return ready;
  });
  await Promise.all(batch);
}
await Promise.all(
  clients.map(
    (client) =>
      new Promise<void>((resolve, reject) => {
        let count = 0;
        client.subscribe<{ benchTicksChanges: { row: { written_ms: number } } }>(
          { query: 'subscription { benchTicksChanges { cursor row { written_ms } } }' },
          {
            next: (result) => {
              latencies.push(Date.now() - result.data!.benchTicksChanges.row.written_ms);
              if (++count === changes) resolve();
            },
            error: reject,
            complete: () => resolve(),
          },
        );
      }),
  ),
);
await Promise.all(clients.map((client) => client.dispose()));
send({ latencies });
