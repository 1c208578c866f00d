/** A few rows of sample data for the example (kept in memory; POST adds to it until restart). */

export interface Booking {
  id: string;
  customer_id: string;
  service: string;
  starts_at: string;
  status: 'confirmed' | 'pending' | 'cancelled';
}

export const bookings: Booking[] = [
  {
    id: 'bk_1001',
    customer_id: 'cus_201',
    service: 'Deep clean, 3 rooms',
    starts_at: '2026-12-01T09:00:00Z',
    status: 'confirmed',
  },
  {
    id: 'bk_1002',
    customer_id: 'cus_202',
    service: 'Window cleaning',
    starts_at: '2026-12-02T13:30:00Z',
    status: 'pending',
  },
  {
    id: 'bk_1003',
    customer_id: 'cus_201',
    service: 'Carpet shampoo',
    starts_at: '2026-12-05T10:00:00Z',
    status: 'confirmed',
  },
];

export const customers = [
  { id: 'cus_201', name: 'Ada Lovelace', email: 'ada@example.com' },
  { id: 'cus_202', name: 'Grace Hopper', email: 'grace@example.com' },
];

export const invoices = [
  { id: 'in_3001', customer_id: 'cus_201', amount_cents: 12900, currency: 'EUR', status: 'paid' },
  { id: 'in_3002', customer_id: 'cus_202', amount_cents: 4500, currency: 'EUR', status: 'open' },
];
