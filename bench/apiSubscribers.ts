// Worker thread of bench/api.ts: opens the subscribers, so their client-side work runs beside
// the server rather than on its event loop, and reports change-to-delivery latencies.
import { parentPort, workerData } from 'node:worker_threads';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const { url, subscribers, changes } = workerData as { url: string; subscribers: number; changes: number };
const latencies: number[] = [];
let attached = 0;
const clients = Array.from({ length: subscribers }, () =>
  createClient({
    url,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    on: { connected: () => parentPort!.postMessage({ connected: ++attached }) },
  }),
);
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
parentPort!.postMessage({ latencies });
