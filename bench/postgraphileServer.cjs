// Child process of bench/api.ts: PostGraphile v4 over the view schema, with the
// connection-filter plugin, on a free port (sent to the parent once it listens).
// PostGraphile v4 needs graphql 15, which npm installs beside Tributary's graphql 16 in more
// than one copy: every `graphql` this process loads is made the one PostGraphile ships with.
const Module = require('node:module');
const path = require('node:path');
const { createServer } = require('node:http');

const graphql15 = path.dirname(
  require.resolve('graphql/package.json', {
    paths: [path.dirname(require.resolve('postgraphile/package.json'))],
  }),
);
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === 'graphql' || request.startsWith('graphql/')) {
    return resolve.call(this, graphql15 + request.slice('graphql'.length), ...rest);
  }
  return resolve.call(this, request, ...rest);
};

const { postgraphile } = require('postgraphile');
const ConnectionFilterPlugin = require('postgraphile-plugin-connection-filter');
const pg = require('pg');

const { DATABASE_URL, POOL_SIZE } = process.env;
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: Number(POOL_SIZE ?? 20) });
const middleware = postgraphile(pool, 'tributary_views', {
  appendPlugins: [ConnectionFilterPlugin],
  disableQueryLog: true,
  disableDefaultMutations: true,
  retryOnInitFail: false,
  graphqlRoute: '/graphql',
});
const server = createServer(middleware);
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('disconnect', () => process.exit(0));
