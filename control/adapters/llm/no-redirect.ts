// The fetch both providers' SDKs send through: it never follows a redirect. Followed, a 3xx from the
// provider's URL (or a proxy in front of it) re-sends the whole request, the conversation with the
// fleet's state and the key's header, to wherever it points, and that address's answer reaches the
// chat's user as the model's. The notification adapters refuse redirects for the same reason. The 3xx
// comes back to the SDK as a failed answer, which providerFailure turns into a sentence.

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

export const fetchWithoutRedirects: Fetch = (input, init) => fetch(input, { ...init, redirect: "manual" })
