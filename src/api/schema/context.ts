import type { Pool } from '../../db/index.js';
import type { EventStore } from '../../ingest/index.js';
import type { ChangeTailer } from '../../projections/index.js';
import type { AnyView } from '../anyView.js';
import type { Scope } from '../apiConfig.js';
import { type Identity, requireScope } from '../auth.js';
import type { StatusProvider } from '../status.js';

export interface ApiContext {
  identity: Identity;
  /** The request's `x-request-id`, or one made up; logs about the request carry it. */
  requestId: string;
  /** Aborted when the request or the subscription ends. */
  signal?: AbortSignal;
}

export interface SchemaOptions {
  views: readonly AnyView[];
  viewSchema: string;
  pool: Pool;
  tailer: ChangeTailer;
  store: Pick<EventStore, 'append'>;
  status: StatusProvider;
  /** Projections whose checkpoints a read-your-writes query on `view` waits for. @default every projection */
  projectionsOf?: (view: string) => readonly string[] | undefined;
  defaultPageSize: number;
  maxPageSize: number;
  subscriptionBuffer: number;
  readYourWritesTimeoutMs: number;
  /** Called when a view subscription starts; the returned function when it ends. */
  onSubscription?: (view: string) => () => void;
}

/** A resolver (or subscribe function) that runs only for callers holding `scope` (or admin). */
export function scoped<Root, Args, Result>(
  scope: Scope,
  resolve: (root: Root, args: Args, context: ApiContext) => Result,
): (root: Root, args: Args, context: ApiContext) => Result {
  return (root, args, context) => {
    requireScope(context.identity, scope);
    return resolve(root, args, context);
  };
}

/** `order_lines` → `OrderLines`; `order_lines` → `orderLines`. */
export const typeName = (name: string) =>
  name
    .split('_')
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join('');
export const fieldName = (name: string) => {
  const type = typeName(name);
  return type[0]!.toLowerCase() + type.slice(1);
};
