// Client-side helpers for applications that consume Tributary's GraphQL API.
export {
  type ResumableChange,
  type ResumableSubscriptionOptions,
  resumableSubscription,
  SubscriptionRefusedError,
} from './resumableSubscription.js';
