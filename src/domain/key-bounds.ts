/**
 * Bounds of a key's grant and of its rotation, defined here only: the API schema states them and the
 * use cases enforce them (design: edge-validation). The limits, quota and metadata bounds are in
 * key-limits.ts, the text bounds in text.ts.
 */
export const KEY_BOUNDS = Object.freeze({
  /** Entries of `allowed_ips`. */
  allowedIps: 100,
  /** Seconds a rotated key keeps working when the admin does not say (`expire_previous_in`). */
  graceDefaultSeconds: 24 * 3600,
  /** The most seconds a rotated key may keep working. */
  graceMaxSeconds: 7 * 24 * 3600,
  /** A key is due for rotation this many days after it was made. */
  rotationDays: 90,
  /** Rotation is "due" (listed, shown, told to webhooks) from this many days before that date. */
  rotationNoticeDays: 14,
});

/** When a key made at `createdAt` is due for rotation. */
export function rotationDueAt(createdAt: Date): Date {
  return new Date(createdAt.getTime() + KEY_BOUNDS.rotationDays * 86_400_000);
}
