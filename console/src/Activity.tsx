import { useEffect, useRef } from 'preact/hooks';
import type { Activity as Data } from './api.js';
import { when } from './format.js';

const HOURS = 24;
const HOUR = 3_600_000;

/** Calls per hour over the last 24 hours, allowed and denied side by side, as SVG drawn by Preact (no chart library needed for bars). */
export function UsageChart(props: { series: Data['series']; now?: number }) {
  const end = Math.floor((props.now ?? Date.now()) / HOUR) * HOUR;
  const byHour = new Map(props.series.map((s) => [Date.parse(s.start), s]));
  const hours = Array.from({ length: HOURS }, (_, i) => {
    const start = end - (HOURS - 1 - i) * HOUR;
    const s = byHour.get(start);
    return { start, allowed: s?.allowed ?? 0, denied: s?.denied ?? 0 };
  });
  const max = Math.max(1, ...hours.map((h) => Math.max(h.allowed, h.denied)));
  const allowed = hours.reduce((n, h) => n + h.allowed, 0);
  const denied = hours.reduce((n, h) => n + h.denied, 0);
  const w = 24,
    chartH = 120;
  const label = `Calls per hour over the last 24 hours: ${allowed} allowed, ${denied} denied.`;
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${HOURS * w} ${chartH + 20}`}
        role="img"
        aria-label={label}
        data-allowed={allowed}
        data-denied={denied}
      >
        {hours.map((h, i) => {
          const ha = (h.allowed / max) * chartH,
            hd = (h.denied / max) * chartH;
          const hourText = new Date(h.start).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
          return (
            <g key={h.start}>
              <title>{`${hourText}: ${h.allowed} allowed, ${h.denied} denied`}</title>
              <rect class="bar-allowed" x={i * w + 3} y={chartH - ha} width={8} height={ha} />
              <rect class="bar-denied" x={i * w + 12} y={chartH - hd} width={8} height={hd} />
              {i % 6 === 0 && (
                <text x={i * w + 2} y={chartH + 14} class="axis">
                  {hourText}
                </text>
              )}
            </g>
          );
        })}
        <line x1="0" x2={HOURS * w} y1={chartH} y2={chartH} class="axis-line" />
      </svg>
      <figcaption>
        <span class="legend legend-allowed" aria-hidden="true" /> Allowed:{' '}
        <strong data-testid="allowed-total">{allowed}</strong> <span class="legend legend-denied" aria-hidden="true" />{' '}
        Denied: <strong data-testid="denied-total">{denied}</strong> (last 24 hours)
      </figcaption>
    </figure>
  );
}

/** The key's activity: chart, denials by reason, addresses, alerts and admin events. */
export function ActivityPanel(props: { label: string; data: Data; onClose: () => void }) {
  const d = props.data;
  const heading = useRef<HTMLHeadingElement>(null);
  // Keyboard and screen-reader users land on what they asked for, not at the top of the table.
  useEffect(() => {
    heading.current?.focus();
    heading.current?.scrollIntoView({ block: 'start' });
  }, [props.data]);
  const denials = Object.entries(d.totals.denied);
  return (
    <section aria-labelledby="activity-title" class="panel">
      <h2 id="activity-title" ref={heading} tabIndex={-1}>
        Activity of {props.label}
      </h2>
      <button type="button" class="secondary" onClick={props.onClose}>
        Close activity
      </button>
      <UsageChart series={d.series} />
      <p>
        Over 30 days: {d.totals.allowed} allowed
        {denials.length > 0 ? `; denied ${denials.map(([r, n]) => `${r} ${n}`).join(', ')}` : ', none denied'}.
      </p>
      <h3>Alerts</h3>
      {d.alerts.length === 0 ? (
        <p>No unusual activity.</p>
      ) : (
        <ul class="alerts">
          {d.alerts.map((a) => (
            <li key={`${a.type}-${a.at}`}>
              <strong>{a.type}</strong> {when(a.at)}: {a.message}
            </li>
          ))}
        </ul>
      )}
      <h3>Addresses seen</h3>
      {d.addresses.length === 0 ? (
        <p>No calls yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Address</th>
              <th scope="col">Calls</th>
              <th scope="col">First seen</th>
              <th scope="col">Last seen</th>
            </tr>
          </thead>
          <tbody>
            {d.addresses.map((a) => (
              <tr key={a.ip}>
                <td>
                  <code>{a.ip}</code>
                </td>
                <td>{a.count}</td>
                <td>{when(a.first_seen)}</td>
                <td>{when(a.last_seen)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>Admin events</h3>
      <ul>
        {d.events.map((e) => (
          <li key={e.id}>
            {when(e.at)}: <strong>{e.action}</strong> by {e.actor}
            {e.source_ip ? ` from ${e.source_ip}` : ''}
          </li>
        ))}
      </ul>
    </section>
  );
}
