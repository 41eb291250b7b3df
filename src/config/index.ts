export { type ResolvedDatabase, resolveDatabase } from './database.js';
export {
  type DatabaseConfig,
  defineConfig,
  type EmbeddedConfig,
  type MetricsConfig,
  type TributaryConfig,
} from './defineConfig.js';
export { applyEnvironment, CONFIG_FILES, type LoadedConfig, loadConfig } from './loadConfig.js';
export { validateConfig } from './validateConfig.js';
