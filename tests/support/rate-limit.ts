/** The 429 body (which limit, when to retry) for a one-minute window of `limit` that resets at `resetAt` (ISO). */
export function rateLimitedBody(limit: number, resetAt: string) {
  return {
    error: "RATE_LIMIT_EXCEEDED",
    code: "RATE_LIMIT_EXCEEDED",
    message: "Rate limit exceeded. Try again in 60 seconds.",
    retryAfter: 60,
    limit,
    window: "1m",
    resetAt,
  }
}
