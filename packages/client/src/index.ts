/** `@ferry/client`: the isomorphic API client (fetch), retries and secret sealing (WebCrypto). */
export { FerryClient, serverUrls, type ClientOptions, type FetchLike, type FetchInit, type FetchResponseLike, type CallInput } from './client.js';
export { ApiError, clientError, isRetryable, isFatal, isAbort } from './errors.js';
export { backoffMs, sleep, withRetry, type RetryOptions } from './retry.js';
export { sealSecret, sealingKeyId } from './sealing.js';
export { followOutput, type FollowOutputOptions, type OutputPage } from './follow.js';
export { Routes } from '@ferry/protocol';
