/**
 * What start-up has opened, each with its close action. When start-up fails part way, `disposeAll`
 * closes them newest first, so a failed start leaves no pool, connection, listener or timer behind
 * to hold the process or the servers (design: graceful-shutdown). Node 20 has no AsyncDisposableStack.
 */
export class Disposers {
  #actions: (() => unknown)[] = [];

  /** Register the close action of what was just opened; returns it, so opening and registering read as one line. */
  add<T>(resource: T, close: (resource: T) => unknown): T {
    this.#actions.push(() => close(resource));
    return resource;
  }

  /** Run every close action, newest first; one that fails is reported and the others still run. */
  async disposeAll(onError: (err: unknown) => void): Promise<void> {
    for (const action of this.#actions.splice(0).reverse()) {
      try {
        await action();
      } catch (err) {
        onError(err);
      }
    }
  }
}
