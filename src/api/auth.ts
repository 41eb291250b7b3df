import { createHash, createPublicKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { GraphQLError } from 'graphql';
import { createRemoteJWKSet, type JWTVerifyGetKey, type JWTVerifyOptions, jwtVerify } from 'jose';
import { ConfigError } from '../errors.js';
import type { ApiKeyConfig, AuthConfig, JwtConfig, Scope } from './apiConfig.js';

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

const SCOPES: readonly Scope[] = ['read', 'append', 'metrics', 'admin'];
const SYMMETRIC = ['HS256', 'HS384', 'HS512'];
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** The algorithms a public key can verify, by its type (and curve). */
const ALGORITHMS_OF_KEY: Record<string, readonly string[]> = {
  rsa: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  'rsa-pss': ['PS256', 'PS384', 'PS512'],
  'ec:prime256v1': ['ES256'],
  'ec:secp384r1': ['ES384'],
  'ec:secp521r1': ['ES512'],
  ed25519: ['EdDSA'],
  ed448: ['EdDSA'],
};

/**
 * Credentials come as `Authorization: Bearer <api key or JWT>` (or `X-API-Key`), and as the
 * `authorization` connection parameter over WebSocket. A token with two dots is a JWT.
 * The configuration is checked here, once: a malformed key digest, a short HS secret or an
 * algorithm the key cannot verify is a ConfigError at start, not a failure of every request.
 */
export async function createAuthenticator(config: AuthConfig = {}): Promise<Authenticator> {
  if (config.open) {
    const everyone: Identity = { principal: { name: 'anonymous', scopes: new Set(SCOPES) }, open: true };
    return async () => everyone;
  }
  const keys = (config.apiKeys ?? []).map((entry, i) => apiKey(entry, i));
  const jwt = config.jwt ? await jwtVerifier(config.jwt) : undefined;
  return async (credentials) => {
    if (!credentials) return { principal: null, open: false };
    const token = credentials.replace(/^Bearer\s+/i, '').trim();
    if (token.split('.').length === 3 && jwt) return jwt(token);
    const digest = createHash('sha256').update(token).digest();
    const key = keys.find((candidate) => timingSafeEqual(candidate.digest, digest));
    if (key) return { principal: { name: key.name, scopes: key.scopes }, open: false };
    return { principal: null, error: 'Unknown API key.', open: false };
  };
}

function apiKey(entry: ApiKeyConfig, index: number) {
  const where = `api.auth.apiKeys[${index}]${entry?.name ? ` ('${entry.name}')` : ''}`;
  if (!entry || typeof entry.name !== 'string' || typeof entry.key !== 'string' || entry.key === '') {
    throw new ConfigError(`${where} needs a name and a key.`);
  }
  if (!Array.isArray(entry.scopes) || entry.scopes.some((scope) => !SCOPES.includes(scope))) {
    throw new ConfigError(`${where}.scopes must list scopes among ${SCOPES.join(', ')}.`);
  }
  let digest: Buffer;
  if (entry.key.startsWith('sha256:')) {
    const hex = entry.key.slice(7);
    if (!/^[0-9a-f]{64}$/i.test(hex)) {
      throw new ConfigError(`${where}.key is 'sha256:' followed by something other than 64 hex digits.`, {
        hint: 'Give the key\'s SHA-256 as hex: `printf %s "$KEY" | sha256sum`.',
      });
    }
    digest = Buffer.from(hex, 'hex');
  } else {
    digest = createHash('sha256').update(entry.key).digest();
  }
  return { name: entry.name, scopes: new Set(entry.scopes), digest };
}

async function jwtVerifier(config: JwtConfig): Promise<(token: string) => Promise<Identity>> {
  let key: JWTVerifyGetKey | Uint8Array | KeyObject;
  let allowed: readonly string[];
  if (config.secret !== undefined) {
    key = new TextEncoder().encode(config.secret);
    if (key.length < 32) {
      throw new ConfigError(`api.auth.jwt.secret is ${key.length} bytes; an HS secret needs at least 32.`, {
        hint: 'Generate one with `openssl rand -base64 48`.',
      });
    }
    allowed = SYMMETRIC;
  } else if (config.publicKey !== undefined) {
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey(config.publicKey);
    } catch (error) {
      throw new ConfigError(`api.auth.jwt.publicKey is not a PEM public key: ${(error as Error).message}`);
    }
    const curve = publicKey.asymmetricKeyDetails?.namedCurve;
    allowed = ALGORITHMS_OF_KEY[`${publicKey.asymmetricKeyType}${curve ? `:${curve}` : ''}`] ?? [];
    key = publicKey;
  } else if (config.jwksUrl !== undefined) {
    key = createRemoteJWKSet(new URL(config.jwksUrl));
    allowed = ASYMMETRIC;
  } else {
    throw new ConfigError('api.auth.jwt needs secret, publicKey or jwksUrl.');
  }
  const algorithms = config.algorithms ?? allowed;
  const refused = algorithms.filter((algorithm) => !allowed.includes(algorithm));
  if (algorithms.length === 0 || refused.length > 0) {
    throw new ConfigError(
      `api.auth.jwt.algorithms lists ${refused.join(', ') || 'nothing'}, which this key cannot verify.`,
      { hint: `Use some of: ${allowed.join(', ')}.` },
    );
  }
  const options: JWTVerifyOptions = {
    algorithms: [...algorithms],
    requiredClaims: ['exp'],
    clockTolerance: config.clockToleranceSeconds ?? 5,
    ...(config.issuer ? { issuer: config.issuer } : {}),
    ...(config.audience ? { audience: config.audience } : {}),
    ...(config.maxTokenAgeSeconds ? { maxTokenAge: config.maxTokenAgeSeconds } : {}),
  };
  return async (token) => {
    try {
      const { payload } = await jwtVerify(token, key as Uint8Array, options);
      const claim = payload[config.scopesClaim ?? 'scope'];
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
