// The configuration `npm start` (`tributary dev`) runs when the current directory has none:
// the shop domain of examples/shop.ts, served by the GraphQL API on port 4000. Products are
// captured from the public.products table; `tributary dev` points the source at its own
// database when `url` is empty.
import { defineConfig } from 'tributary';
import { shop } from './shop.js';

export default defineConfig({
  projections: [shop],
  sources: {
    shop: { url: process.env.SHOP_DATABASE_URL ?? '', tables: ['public.products'] },
  },
  // Product search on the built-in PostgreSQL full-text backend: `searchProducts` in GraphQL.
  // An external backend takes its URL from the environment, e.g.
  // backend: { kind: 'elasticsearch', url: process.env.ELASTICSEARCH_URL ?? '', index: 'products' }.
  sinks: {
    productSearch: { view: 'products', backend: { kind: 'postgres' } },
  },
  api: {
    port: 4000,
    // `tributary dev` serves the API without authentication and says so; `tributary start`
    // and `serve` need keys or JWTs, for example:
    auth: { apiKeys: [{ name: 'demo', key: 'demo-key-change-me', scopes: ['read', 'append'] }] },
  },
});
