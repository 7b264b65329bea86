// Numbers as the CLI prints them (src/core/units.cpp, fmt): GiB = 2^30 bytes, B = 10^9 parameters.

const GIB = 2n ** 30n;

// bytes / 2^30 with `decimals` digits, rounded half to even on the exact value, as fmt's "{:.Nf}" does
// (JavaScript's toFixed rounds 0.0625 to 0.063 where fmt prints 0.062).
export function gib(bytes, decimals = 2) {
  let n = BigInt(Math.round(Number(bytes)));
  const negative = n < 0n;
  if (negative) n = -n;
  const scaled = n * 10n ** BigInt(decimals);
  let q = scaled / GIB;
  const r2 = (scaled % GIB) * 2n;
  if (r2 > GIB || (r2 === GIB && q % 2n === 1n)) q += 1n;
  let digits = q.toString().padStart(decimals + 1, '0');
  const text = decimals ? digits.slice(0, -decimals) + '.' + digits.slice(-decimals) : digits;
  return (negative ? '-' : '') + text;
}

export function thousands(n) {
  return BigInt(Math.round(Number(n))).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

// format_params_short: "2.78 B", "124.44 M"
export function paramsShort(params) {
  const p = Number(params);
  if (p >= 1e9) return fixed(p / 1e9, 2) + ' B';
  if (p >= 1e6) return fixed(p / 1e6, 2) + ' M';
  if (p >= 1e3) return fixed(p / 1e3, 2) + ' K';
  return String(p);
}

// A double with `decimals` digits, rounded half to even on its exact binary value, as fmt does.
export function fixed(x, decimals) {
  if (!Number.isFinite(x) || Math.abs(x) >= 1e21) return String(x);
  const exact = Math.abs(x).toFixed(100);  // the exact binary value, to 100 decimals: enough for what is printed here
  const [whole, frac] = exact.split('.');
  const kept = whole + frac.slice(0, decimals);
  const rest = frac.slice(decimals);
  let up = rest[0] > '5' || (rest[0] === '5' && /[1-9]/.test(rest.slice(1)));
  if (rest[0] === '5' && !/[1-9]/.test(rest.slice(1))) up = Number(kept[kept.length - 1]) % 2 === 1;  // a tie
  let digits = up ? (BigInt(kept) + 1n).toString() : BigInt(kept).toString();
  digits = digits.padStart(decimals + 1, '0');
  const text = decimals ? digits.slice(0, -decimals) + '.' + digits.slice(-decimals) : digits;
  return (x < 0 ? '-' : '') + text;  // fmt keeps the sign of a negative that rounds to zero
}

// parse_bytes (src/core/units.cpp) for a memory size typed on the page, e.g. "24GiB", "80 GB", "12288MiB".
// The page shows this value at once; the fit table then runs with --vram and uses the CLI's own reading.
export function parseBytes(text) {
  const s = String(text).replace(/\s+/g, '');
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(s);
  if (!m || !/^\d*\.?\d*$/.test(m[1]) || m[1] === '.') return null;
  const value = Number(m[1]);
  const mult = { '': 1, b: 1, kib: 1024, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 }[m[2].toLowerCase()];
  if (mult === undefined || !Number.isFinite(value)) return null;
  const bytes = value * mult;
  if (!(bytes >= 1) || bytes > 2 ** 60) return null;
  return Math.round(bytes);
}
