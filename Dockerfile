# syntax=docker/dockerfile:1
# Tributary as a container: `docker compose up` (docker-compose.yml) runs it with PostgreSQL.
ARG NODE_IMAGE=node:22-bookworm-slim

# 1. Build: every dependency, then src/ and examples/ compiled to dist/.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here (built below).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json tsconfig.examples.json ./
COPY src ./src
COPY examples ./examples
RUN npm run build

# 2. Production dependencies only. Optional ones are left out: they are the embedded
# PostgreSQL's binaries, and a container uses DATABASE_URL instead.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund --ignore-scripts && npm cache clean --force

# 3. The image: the build, production dependencies, migrations; runs as the unprivileged `node` user.
FROM ${NODE_IMAGE}
# A larger young generation: a worker folding many events makes short-lived objects fast, and
# with V8's default most of its garbage collection is promoting and re-marking them (see
# Operations in the README).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=64 \
    TRIBUTARY_API_HOST=0.0.0.0 \
    TRIBUTARY_HEALTHCHECK_URL=http://127.0.0.1:4000/healthz
WORKDIR /app
COPY --chown=root:root package.json ./
COPY --chown=root:root bin ./bin
COPY --chown=root:root migrations ./migrations
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
USER node
EXPOSE 4000
# /healthz of the API; for `start --no-api` or `cdc run`, point TRIBUTARY_HEALTHCHECK_URL at
# metrics.port (9464) and set TRIBUTARY_METRICS_HOST=0.0.0.0 only if Prometheus scrapes it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.TRIBUTARY_HEALTHCHECK_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/tributary.js"]
CMD ["start"]
