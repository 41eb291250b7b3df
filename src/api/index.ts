export type { ApiConfig, ApiKeyConfig, ApiLimitsConfig, AuthConfig, JwtConfig, Scope } from './apiConfig.js';
export { type Authenticator, createAuthenticator, type Identity, type Principal } from './auth.js';
export { type Api, type CreateApiOptions, createApi } from './createApi.js';
export type { OperationalEndpoint } from './endpoints.js';
export { matchesWhere, type Where } from './filter.js';
export {
  type OperationalServer,
  type OperationalServerOptions,
  serveOperationalEndpoints,
} from './operationalServer.js';
export { countRows, type OrderBy, type Page, type PageArgs, queryByKey, queryPage } from './queryView.js';
export { type ApiContext, buildSchema, fieldName, type SchemaOptions, typeName } from './schema/index.js';
export type { CaptureSourceStatus, StatusProvider } from './status.js';
export {
  type ChangeMessage,
  SUBSCRIPTION_OVERFLOW,
  SubscriptionOverflowError,
  subscribeChanges,
} from './subscribeChanges.js';
