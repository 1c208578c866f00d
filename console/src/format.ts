const DAY = 86_400_000;

/** A time for people: local date and time, with the exact UTC instant in the title. */
export const when = (iso: string | null): string =>
  iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '—';

/** As the API's `rotation` filter: due within 14 days or past; overdue once past. */
export function rotationState(
  key: { rotation_due_at: string; status: string },
  now = Date.now(),
): 'overdue' | 'due' | undefined {
  if (key.status !== 'active') return undefined;
  const due = Date.parse(key.rotation_due_at);
  if (due <= now) return 'overdue';
  return due - now <= 14 * DAY ? 'due' : undefined;
}

/** To the second (deliveries and their attempts are seconds apart). */
export const whenExact = (iso: string | null): string =>
  iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) : '—';
