/**
 * The contract the webhook use cases send through; its implementation (transport/webhook/sender.ts)
 * makes the HTTP request and holds the request-forgery guard.
 */
export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** One attempt's outcome: the receiver's status and the start of its answer, or why there was none. */
export interface WebhookResponse {
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  response: string | null;
}

/**
 * The one way out to an account's webhook URL, and the one home of the request-forgery guard: a URL
 * is checked when an endpoint is saved (`check`) and again at every connection (`send`), where the
 * host is resolved, every address checked, and the connection made to a checked address (a name
 * that resolves elsewhere the second time, DNS rebinding, is caught there). Redirects are not followed.
 */
export interface WebhookSender {
  /** VALIDATION_FAILED (on `url`) for a URL the service must not call. */
  check(url: string): Promise<void>;
  send(request: WebhookRequest): Promise<WebhookResponse>;
}
