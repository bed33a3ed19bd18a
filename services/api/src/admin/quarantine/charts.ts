/**
 * Bar charts as SVG markup, built on the server (the pages carry no script). The markup is
 * written out raw into the page, past the template's auto-escaping, so everything that is
 * not a number we computed goes through escapeXml here: tenant names and signature-derived
 * labels are other people's text. Labels are cut before escaping, never inside an entity.
 */
export interface Bar {
  label: string;
  value: number;
  /** Hover text; defaults to "label: value". */
  title?: string;
}

const FONT = `font-family="system-ui, sans-serif" font-size="12"`;
const BAR_FILL = "#3b6fb6";

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function cut(text: string, max: number): string {
  const chars = [...text]; // by code point, so a cut never splits a surrogate pair
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

function svgOpen(width: number, height: number, title: string): string {
  const t = escapeXml(title);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${t}"><title>${t}</title>`;
}

function emptyChart(title: string, width: number): string {
  return `${svgOpen(width, 40, title)}<text x="8" y="24" ${FONT} fill="#555">Nothing in this range</text></svg>`;
}

/** One row per bar, label on the left: for reasons and tenants, whose labels are long. */
export function horizontalBarChart(title: string, bars: readonly Bar[], width = 720): string {
  if (bars.length === 0) return emptyChart(title, width);
  const labelWidth = 240;
  const valueWidth = 60;
  const rowHeight = 22;
  const plot = width - labelWidth - valueWidth;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const rows = bars.map((b, i) => {
    const y = i * rowHeight;
    const w = Math.max(1, Math.round((b.value / max) * plot));
    const hover = escapeXml(b.title ?? `${b.label}: ${b.value}`);
    return (
      `<g><title>${hover}</title>` +
      `<text x="${labelWidth - 8}" y="${y + 15}" text-anchor="end" ${FONT}>${escapeXml(cut(b.label, 36))}</text>` +
      `<rect x="${labelWidth}" y="${y + 3}" width="${w}" height="${rowHeight - 6}" fill="${BAR_FILL}"/>` +
      `<text x="${labelWidth + w + 6}" y="${y + 15}" ${FONT}>${b.value}</text></g>`
    );
  });
  return `${svgOpen(width, bars.length * rowHeight + 4, title)}${rows.join("")}</svg>`;
}

/** One column per bar, in order, labels under some of them: for days. */
export function columnChart(title: string, bars: readonly Bar[], width = 720, height = 220): string {
  if (bars.length === 0) return emptyChart(title, width);
  const left = 36;
  const bottom = 36;
  const top = 12;
  const plotW = width - left - 8;
  const plotH = height - top - bottom;
  const slot = plotW / bars.length;
  const barW = Math.max(1, slot * 0.8);
  const max = Math.max(1, ...bars.map((b) => b.value));
  const labelEvery = Math.max(1, Math.ceil(bars.length / 10));
  const parts = bars.map((b, i) => {
    const h = b.value === 0 ? 0 : Math.max(1, Math.round((b.value / max) * plotH));
    const x = left + i * slot + (slot - barW) / 2;
    const hover = escapeXml(b.title ?? `${b.label}: ${b.value}`);
    const label = i % labelEvery === 0 ? `<text x="${(x + barW / 2).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle" ${FONT}>${escapeXml(cut(b.label, 12))}</text>` : "";
    return `<g><title>${hover}</title><rect x="${x.toFixed(1)}" y="${top + plotH - h}" width="${barW.toFixed(1)}" height="${h}" fill="${BAR_FILL}"/>${label}</g>`;
  });
  const axis =
    `<line x1="${left}" y1="${top + plotH}" x2="${width - 8}" y2="${top + plotH}" stroke="#888"/>` +
    `<text x="${left - 6}" y="${top + 10}" text-anchor="end" ${FONT}>${max}</text>` +
    `<text x="${left - 6}" y="${top + plotH}" text-anchor="end" ${FONT}>0</text>`;
  return `${svgOpen(width, height, title)}${axis}${parts.join("")}</svg>`;
}
