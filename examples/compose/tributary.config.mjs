// The configuration docker-compose.yml mounts into the container (/app/config): the shop demo's
// projection, its products captured from PostgreSQL, and the API for everyone who can reach
// port 4000, so with authentication. Plain JavaScript: it needs no TypeScript loader.
import { shop } from '../dist/examples/shop.js';

const key = process.env.TRIBUTARY_API_KEY;
const scraper = process.env.TRIBUTARY_METRICS_KEY;

export default {
  projections: [shop],
  sources: {
    // The products table of the same PostgreSQL (created by products.sql at its first start).
    shop: { url: process.env.DATABASE_URL, tables: ['public.products'] },
  },
  api: {
    port: 4000,
    host: '0.0.0.0',
    auth: {
      apiKeys: [
        ...(key ? [{ name: 'app', key, scopes: ['read', 'append'] }] : []),
        ...(scraper ? [{ name: 'prometheus', key: scraper, scopes: ['metrics'] }] : []),
      ],
    },
  },
};
