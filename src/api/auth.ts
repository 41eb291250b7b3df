import { createHash, timingSafeEqual } from 'node:crypto';
import { GraphQLError } from 'graphql';
import { createRemoteJWKSet, importSPKI, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { ConfigError } from '../errors.js';
import type { AuthConfig, Scope } from './apiConfig.js';

export interface Principal {
  /** API key name or JWT subject. */
  name: string;
  scopes: ReadonlySet<Scope>;
}

/** Who is calling; `error` is set when credentials were presented but are not valid. */
export interface Identity {
  principal: Principal | null;
  error?: string;
  open: boolean;
}

export type Authenticator = (credentials: string | undefined) => Promise<Identity>;

const SCOPES: readonly Scope[] = ['read', 'append', 'admin'];

/**
 * Credentials come as `Authorization: Bearer <api key or JWT>` (or `X-API-Key`), and as the
 * `authorization` connection parameter over WebSocket. A token with two dots is a JWT.
 */
export async function createAuthenticator(config: AuthConfig = {}): Promise<Authenticator> {
  if (config.open) {
    const everyone: Identity = { principal: { name: 'anonymous', scopes: new Set(SCOPES) }, open: true };
    return async () => everyone;
  }
  const keys = (config.apiKeys ?? []).map((entry) => ({
    name: entry.name,
    scopes: new Set(entry.scopes),
    digest: entry.key.startsWith('sha256:')
      ? Buffer.from(entry.key.slice(7), 'hex')
      : createHash('sha256').update(entry.key).digest(),
  }));
  let getKey: JWTVerifyGetKey | Uint8Array | Awaited<ReturnType<typeof importSPKI>> | undefined;
  const jwt = config.jwt;
  if (jwt) {
    if (jwt.secret) getKey = new TextEncoder().encode(jwt.secret);
    else if (jwt.publicKey) getKey = await importSPKI(jwt.publicKey, 'RS256');
    else if (jwt.jwksUrl) getKey = createRemoteJWKSet(new URL(jwt.jwksUrl));
    else throw new ConfigError('api.auth.jwt needs secret, publicKey or jwksUrl.');
  }
  return async (credentials) => {
    if (!credentials) return { principal: null, open: false };
    const token = credentials.replace(/^Bearer\s+/i, '').trim();
    if (token.split('.').length === 3 && getKey) {
      try {
        const { payload } = await jwtVerify(token, getKey as Uint8Array, {
          ...(jwt?.issuer ? { issuer: jwt.issuer } : {}),
          ...(jwt?.audience ? { audience: jwt.audience } : {}),
        });
        const claim = payload[jwt?.scopesClaim ?? 'scope'];
        const listed = Array.isArray(claim)
          ? claim.map(String)
          : typeof claim === 'string'
            ? claim.split(/\s+/)
            : [];
        return {
          principal: {
            name: payload.sub ?? 'jwt',
            scopes: new Set(listed.filter((s): s is Scope => (SCOPES as string[]).includes(s))),
          },
          open: false,
        };
      } catch (error) {
        return { principal: null, error: `Invalid token: ${(error as Error).message}`, open: false };
      }
    }
    const digest = createHash('sha256').update(token).digest();
    const key = keys.find((candidate) => timingSafeEqual(candidate.digest, digest));
    if (key) return { principal: { name: key.name, scopes: key.scopes }, open: false };
    return { principal: null, error: 'Unknown API key.', open: false };
  };
}

/** Throws UNAUTHENTICATED or FORBIDDEN unless the caller holds `scope` (or admin). */
export function requireScope(identity: Identity, scope: Scope): Principal {
  const principal = identity.principal;
  if (!principal) {
    throw new GraphQLError(identity.error ?? 'Authentication required.', {
      extensions: {
        code: 'UNAUTHENTICATED',
        hint: 'Send `Authorization: Bearer <API key or JWT>` (over WebSocket: the `authorization` connection parameter).',
      },
    });
  }
  if (!principal.scopes.has(scope) && !principal.scopes.has('admin')) {
    throw new GraphQLError(`This credential lacks the '${scope}' scope.`, {
      extensions: { code: 'FORBIDDEN', requiredScope: scope },
    });
  }
  return principal;
}
