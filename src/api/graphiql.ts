import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { GraphiQLOptions, Plugin } from 'graphql-yoga';

/**
 * GraphiQL served from this server alone: its page, script, stylesheet and editor workers come
 * from the `@graphql-yoga/render-graphiql` package (the build of Yoga's GraphiQL), so it works
 * with no network beyond the API itself. The page is small; the assets (about 9 MB of script,
 * 2.5 MB gzipped) load once per version and are cached by the browser for good, since their
 * path names the version. They are read from the package only when first asked for.
 */
const PACKAGE = '@graphql-yoga/render-graphiql';
const VERSION = (createRequire(import.meta.url)(`${PACKAGE}/package.json`) as { version: string }).version;

type Assets = typeof import('@graphql-yoga/render-graphiql/graphiql');

interface Asset {
  type: string;
  body: () => Promise<Buffer>;
}

const ASSETS: Record<string, Asset> = {
  'graphiql.js': { type: 'text/javascript; charset=utf-8', body: text((a) => a.js) },
  'graphiql.css': { type: 'text/css; charset=utf-8', body: text((a) => a.css) },
  'editor.worker.js': { type: 'text/javascript; charset=utf-8', body: text((a) => a.editorWorkerService) },
  'json.worker.js': { type: 'text/javascript; charset=utf-8', body: text((a) => a.jsonWorker) },
  'graphql.worker.js': { type: 'text/javascript; charset=utf-8', body: text((a) => a.graphqlWorker) },
  'favicon.ico': {
    type: 'image/x-icon',
    body: once(async () => Buffer.from((await load()).favicon.replace(/^data:[^,]*;base64,/, ''), 'base64')),
  },
};

let loaded: Promise<Assets> | undefined;
function load(): Promise<Assets> {
  loaded ??= import('@graphql-yoga/render-graphiql/graphiql');
  return loaded;
}

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    value ??= make();
    return value;
  };
}

function text(pick: (assets: Assets) => string): () => Promise<Buffer> {
  return once(async () => Buffer.from(pick(await load()), 'utf8'));
}

const gzipped = new Map<string, Promise<Buffer>>();
const compress = promisify(gzip);

/** Where the assets are served: under the GraphQL path, so that a proxy forwarding that path serves them too. */
export function graphiqlAssetsPath(graphqlPath: string): string {
  return `${graphqlPath.replace(/\/$/, '')}/graphiql/${VERSION}/`;
}

/** The GraphiQL page, loading its assets from `graphiqlAssetsPath`. */
export function renderGraphiQL(graphqlPath: string): (options: GraphiQLOptions) => string {
  const assets = graphiqlAssetsPath(graphqlPath);
  return (options) => {
    const title = escapeHtml(options.title ?? 'GraphiQL');
    // Inside a <script>: `<` as \u003c, so no value can close the element.
    const json = (value: unknown) => JSON.stringify(value).replaceAll('<', '\\u003c');
    const workers = {
      editorWorkerService: `${assets}editor.worker.js`,
      json: `${assets}json.worker.js`,
      graphql: `${assets}graphql.worker.js`,
    };
    return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${title}</title>
    <link rel="icon" href="${assets}favicon.ico" />
    <link rel="stylesheet" href="${assets}graphiql.css" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>GraphiQL needs JavaScript.</noscript>
    <div id="root"></div>
    <script>
      const workers = ${json(workers)};
      self.MonacoEnvironment = { globalAPI: false, getWorkerUrl: (_moduleId, label) => workers[label] };
    </script>
    <script src="${assets}graphiql.js"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(document.querySelector('#root'), ${json(options)});
    </script>
  </body>
</html>
`;
  };
}

/** Serves the GraphiQL assets (GET and HEAD), without credentials: they are the package's public files. */
export function graphiqlAssets(graphqlPath: string): Plugin {
  const prefix = graphiqlAssetsPath(graphqlPath);
  return {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      if (!url.pathname.startsWith(prefix)) return;
      const asset = ASSETS[url.pathname.slice(prefix.length)];
      if (!asset || (request.method !== 'GET' && request.method !== 'HEAD')) {
        endResponse(new fetchAPI.Response('not found\n', { status: 404 }));
        return;
      }
      const raw = await asset.body();
      const zip = raw.length > 1024 && /\bgzip\b/.test(request.headers.get('accept-encoding') ?? '');
      let body = raw;
      if (zip) {
        let compressed = gzipped.get(url.pathname);
        if (!compressed) {
          compressed = compress(raw);
          gzipped.set(url.pathname, compressed);
        }
        body = await compressed;
      }
      endResponse(
        new fetchAPI.Response(request.method === 'HEAD' ? null : new Uint8Array(body), {
          status: 200,
          headers: {
            'content-type': asset.type,
            'content-length': String(body.length),
            'cache-control': 'public, max-age=31536000, immutable',
            ...(zip ? { 'content-encoding': 'gzip' } : {}),
            vary: 'accept-encoding',
          },
        }),
      );
    },
  };
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
