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
