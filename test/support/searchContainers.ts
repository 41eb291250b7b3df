import type { SinkBackendConfig } from '../../src/projections/index.js';

/** The external search backends the contract suite can run against. */
export type ExternalKind = 'elasticsearch' | 'opensearch' | 'meilisearch' | 'typesense';

export interface ExternalBackend {
  kind: ExternalKind;
  /** How to reach it, or why the suite skips it. */
  config?: SinkBackendConfig;
  skipReason?: string;
  /** Stops the container the suite started for it (nothing for a given URL). */
  stop(): Promise<void>;
}

const MEILI_KEY = 'tributary-test-master-key';
const TYPESENSE_KEY = 'tributary-test-key';

/** What each backend's container is: image, port, readiness and settings. */
const CONTAINERS: Record<
  ExternalKind,
  { image: string; port: number; health: string; environment?: Record<string, string>; command?: string[] }
> = {
  elasticsearch: {
    image: 'docker.elastic.co/elasticsearch/elasticsearch:9.1.5',
    port: 9200,
    health: '/_cluster/health?wait_for_status=yellow',
    environment: {
      'discovery.type': 'single-node',
      'xpack.security.enabled': 'false',
      ES_JAVA_OPTS: '-Xms512m -Xmx512m',
    },
  },
  opensearch: {
    image: 'opensearchproject/opensearch:3.2.0',
    port: 9200,
    health: '/_cluster/health?wait_for_status=yellow',
    environment: {
      'discovery.type': 'single-node',
      DISABLE_SECURITY_PLUGIN: 'true',
      DISABLE_INSTALL_DEMO_CONFIG: 'true',
      OPENSEARCH_JAVA_OPTS: '-Xms512m -Xmx512m',
    },
  },
  meilisearch: {
    image: 'getmeili/meilisearch:v1.22',
    port: 7700,
    health: '/health',
    environment: { MEILI_MASTER_KEY: MEILI_KEY, MEILI_NO_ANALYTICS: 'true' },
  },
  typesense: {
    image: 'typesense/typesense:29.0',
    port: 8108,
    health: '/health',
    command: ['--data-dir', '/tmp', '--api-key', TYPESENSE_KEY, '--enable-cors'],
  },
};

function configOf(kind: ExternalKind, url: string, key: string | undefined): SinkBackendConfig {
  switch (kind) {
    case 'elasticsearch':
    case 'opensearch':
      return { kind, url };
    case 'meilisearch':
      return { kind, url, ...(key ? { apiKey: key } : {}) };
    case 'typesense':
      return { kind, url, apiKey: key ?? 'xyz' };
  }
}

/**
 * Why no container can be started here, or undefined when a container runtime answers
 * (Docker, Podman, Colima… as testcontainers finds them). TRIBUTARY_TEST_CONTAINERS=0
 * turns containers off.
 */
async function noContainerRuntime(): Promise<string | undefined> {
  if (process.env.TRIBUTARY_TEST_CONTAINERS === '0') return 'TRIBUTARY_TEST_CONTAINERS=0';
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return undefined;
  } catch (error) {
    return `no container runtime is reachable (${error instanceof Error ? error.message : String(error)})`;
  }
}

/**
 * Each external backend for the contract suite: the server at TRIBUTARY_TEST_<KIND>_URL
 * when set (keys from TRIBUTARY_TEST_MEILISEARCH_KEY, TRIBUTARY_TEST_TYPESENSE_KEY);
 * otherwise a container of it started with testcontainers when a container runtime is
 * reachable; otherwise a reason to skip it.
 */
export async function externalBackends(): Promise<ExternalBackend[]> {
  const kinds: ExternalKind[] = ['elasticsearch', 'opensearch', 'meilisearch', 'typesense'];
  const given = (kind: ExternalKind) => process.env[`TRIBUTARY_TEST_${kind.toUpperCase()}_URL`];
  const runtime = kinds.every((kind) => given(kind)) ? undefined : await noContainerRuntime();
  return Promise.all(
    kinds.map(async (kind): Promise<ExternalBackend> => {
      const url = given(kind);
      if (url) {
        const key = process.env[`TRIBUTARY_TEST_${kind.toUpperCase()}_KEY`];
        return { kind, config: configOf(kind, url, key), stop: async () => {} };
      }
      if (runtime) {
        return {
          kind,
          skipReason: `TRIBUTARY_TEST_${kind.toUpperCase()}_URL is not set and ${runtime}`,
          stop: async () => {},
        };
      }
      const { GenericContainer, Wait } = await import('testcontainers');
      const spec = CONTAINERS[kind];
      let container = new GenericContainer(spec.image)
        .withExposedPorts(spec.port)
        .withWaitStrategy(Wait.forHttp(spec.health, spec.port).forStatusCode(200))
        .withStartupTimeout(180_000);
      if (spec.environment) container = container.withEnvironment(spec.environment);
      if (spec.command) container = container.withCommand(spec.command);
      let started: Awaited<ReturnType<typeof container.start>>;
      try {
        started = await container.start();
      } catch (error) {
        return {
          kind,
          skipReason: `its container (${spec.image}) did not start: ${error instanceof Error ? error.message : String(error)}`,
          stop: async () => {},
        };
      }
      const address = `http://${started.getHost()}:${started.getMappedPort(spec.port)}`;
      const key = kind === 'meilisearch' ? MEILI_KEY : kind === 'typesense' ? TYPESENSE_KEY : undefined;
      return {
        kind,
        config: configOf(kind, address, key),
        stop: async () => {
          await started.stop();
        },
      };
    }),
  );
}
