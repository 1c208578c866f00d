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
  /** Admin hashing (create, rotate) runs in a lane of its own, this many at a time, so a bulk create cannot starve Authenticate. */
  adminConcurrency?: number;
  /** Admin hashes allowed to wait; beyond that `hash` fails fast with OVERLOADED. */
  adminQueue?: number;
  /**
   * argon2 failed (a stored hash that does not decode, the native module failing, memory exhausted): told
   * with argon2's own error, for the log and a metric. The caller gets HASHER_FAULT, never a wrong secret.
   */
  onFault?: (err: unknown) => void;
}

/** One bounded lane of argon2 work. */
class Lane {
  running = 0;
  queue: (() => void)[] = [];
  constructor(
    readonly concurrency: number,
    readonly maxQueue: number,
  ) {}

  async run<T>(work: () => Promise<T>, shouldStart?: () => boolean): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.queue.length >= this.maxQueue) throw new AppError('OVERLOADED', 'too many argon2 operations waiting');
      // The slot is handed over by the finishing call, already counted in `running`.
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.running++;
    }
    try {
      // A caller that gave up (deadline passed, call cancelled) while queued does not start hashing.
      if (shouldStart && !shouldStart())
        throw new AppError('DEADLINE_EXCEEDED', 'the call ended before its verification could start');
      return await work();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/**
 * argon2id hashing of key secrets with bounded concurrency, so cold verifications cannot
 * take every core from the event loop, and a full queue sheds load instead of stalling.
 */
export class Hasher {
  #o: HasherOptions;
  #verify: Lane;
  #admin: Lane;
  #verifications = 0;
  #faults = 0;

  constructor(opts: HasherOptions) {
    this.#o = opts;
    this.#verify = new Lane(opts.maxConcurrency, opts.maxQueue);
    this.#admin = new Lane(opts.adminConcurrency ?? 1, opts.adminQueue ?? 256);
  }

  /** Verifications waiting for a slot. */
  get queued(): number {
    return this.#verify.queue.length;
  }

  get running(): number {
    return this.#verify.running + this.#admin.running;
  }

  /** argon2 verifications performed since start. */
  get verifications(): number {
    return this.#verifications;
  }

  /** argon2 verifications that failed with a fault (not a wrong secret) since start. */
  get faults(): number {
    return this.#faults;
  }

  /** The argon2id PHC string of a secret. */
  async hash(secret: string): Promise<string> {
    return this.#admin.run(() =>
      hash(secret, {
        memoryCost: this.#o.memoryCost,
        timeCost: this.#o.timeCost,
        parallelism: this.#o.parallelism,
      }),
    );
  }

  /**
   * True when the secret matches the PHC string; OVERLOADED when the queue is full;
   * DEADLINE_EXCEEDED when `shouldStart` says no once a slot is free; HASHER_FAULT when argon2 fails.
   */
  async verify(phc: string, secret: string, shouldStart?: () => boolean): Promise<boolean> {
    return this.#verify.run(() => this.#verifyOnce(phc, secret), shouldStart);
  }

  /**
   * A verification for an admin use case (a leak report): in the admin lane, beside create and
   * rotate, so it never takes a slot or a queue place of Authenticate; OVERLOADED when that lane is full,
   * HASHER_FAULT when argon2 fails.
   */
  async verifyForAdmin(phc: string, secret: string): Promise<boolean> {
    return this.#admin.run(() => this.#verifyOnce(phc, secret));
  }

  /**
   * A wrong secret is `false` (argon2 says so without throwing); a throw is a fault of the stored hash or
   * of argon2 itself. Taken for a wrong secret it would answer KEY_UNKNOWN and count toward the caller's
   * lockout (design: no-remote-lockout), so it is reported and thrown as HASHER_FAULT instead.
   */
  async #verifyOnce(phc: string, secret: string): Promise<boolean> {
    this.#verifications++;
    try {
      return await verify(phc, secret);
    } catch (err) {
      this.#faults++;
      this.#o.onFault?.(err);
      // argon2's message stays in the log: this one reaches callers (gRPC details), so it names no hash.
      throw new AppError('HASHER_FAULT', 'the key could not be checked: its stored hash could not be verified');
    }
  }
}
