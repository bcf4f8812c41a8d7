// How the dashboard writes numbers on screen; tests compare the text with the profile's JSON through these.

export const FORMAT = Object.freeze({
  ms: (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '-'),
  percent: (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '-'),
  bytes: (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-'),
  saving: (v: number): string => (Number.isFinite(v) ? `${v.toFixed(1)}x` : '-'),
  rate: (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-'),
  count: (v: number): string => String(v),
  bits: (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '-'),
  mib: (v: number): string => `${(v / 2 ** 20).toFixed(1)} MiB`,
  /** A relative error, signed: +12.3%. */
  error: (v: number): string => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)}%` : '-'),
});
