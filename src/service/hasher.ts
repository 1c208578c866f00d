import { hash, verify } from '@node-rs/argon2';
import { AppError } from '../domain/errors.js';

export interface HasherOptions {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
  /** argon2 runs at most this many at a time (in libuv's thread pool). */
  maxConcurrency: number;
  /** Verifications allowed to wait; beyond that `verify` fails fast with OVERLOADED. */
  maxQueue: number;
}

/**
 * argon2id hashing of key secrets with bounded concurrency, so cold verifications cannot
 * take every core from the event loop, and a full queue sheds load instead of stalling.
 */
export class Hasher {
  #o: HasherOptions;
  #running = 0;
  #queue: (() => void)[] = [];
  #verifications = 0;

  constructor(opts: HasherOptions) {
    this.#o = opts;
  }

  /** Verifications waiting for a slot. */
  get queued(): number {
    return this.#queue.length;
  }

  get running(): number {
    return this.#running;
  }

  /** argon2 verifications performed since start. */
  get verifications(): number {
    return this.#verifications;
  }

  /** The argon2id PHC string of a secret. */
  async hash(secret: string): Promise<string> {
    return this.#limit(() => hash(secret, {
      memoryCost: this.#o.memoryCost, timeCost: this.#o.timeCost, parallelism: this.#o.parallelism,
    }), false);
  }

  /** True when the secret matches the PHC string; OVERLOADED when the queue is full. */
  async verify(phc: string, secret: string): Promise<boolean> {
    return this.#limit(() => {
      this.#verifications++;
      return verify(phc, secret).catch(() => false);
    }, true);
  }

  async #limit<T>(work: () => Promise<T>, shed: boolean): Promise<T> {
    if (this.#running >= this.#o.maxConcurrency) {
      if (shed && this.#queue.length >= this.#o.maxQueue) throw new AppError('OVERLOADED', 'too many verifications waiting');
      // The slot is handed over by the finishing call, already counted in #running.
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await work();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
