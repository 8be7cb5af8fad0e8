import { isIP } from 'node:net';
import { InvalidArgumentError } from 'commander';

/** `--cors-origin`: `*` for any origin, else the exact origins allowed. */
export type CorsOrigins = '*' | string[];

/** `--trust-proxy`, as Fastify's `trustProxy` takes it: every proxy, a hop count, or the proxies' addresses and CIDRs. */
export type TrustProxy = boolean | number | string[];

/** `--cors-origin <origins>`: `*`, or a comma list of origins (`https://chat.example.com`), each a scheme, host and optional port. */
export function parseCorsOrigin(value: string): CorsOrigins {
  if (value.trim() === '*') return '*';
  const origins = value
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  if (origins.length === 0) throw new InvalidArgumentError('expected * or a comma list of origins such as https://chat.example.com');
  for (const origin of origins) {
    let url: URL | undefined;
    try {
      url = new URL(origin);
    } catch {
      url = undefined;
    }
    // A browser's Origin header is exactly scheme://host[:port]: no path, no trailing slash.
    if (!url || !['http:', 'https:'].includes(url.protocol) || url.origin !== origin) {
      throw new InvalidArgumentError(`"${origin}" is not an origin: expected scheme://host[:port], such as https://chat.example.com`);
    }
  }
  return origins;
}

/** An address (`10.0.0.1`, `::1`) or a CIDR block (`10.0.0.0/8`, `fd00::/8`). */
function isAddressOrCidr(entry: string): boolean {
  const [address = '', prefix, ...rest] = entry.split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  return /^\d+$/u.test(prefix) && bits <= (version === 4 ? 32 : 128);
}

/**
 * `--trust-proxy <value>`: `true` trusts every proxy (the client is the
 * leftmost X-Forwarded-For address), a number the hops in front of this
 * server, a comma list of addresses/CIDRs the proxies at those addresses;
 * `false` is the default, the peer's address.
 * https://fastify.dev/docs/latest/Reference/Server/#trustproxy
 */
export function parseTrustProxy(value: string): TrustProxy {
  const v = value.trim();
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^\d+$/u.test(v)) {
    const hops = Number(v);
    if (hops < 1 || hops > 100) throw new InvalidArgumentError('a hop count must be from 1 to 100');
    return hops;
  }
  const entries = v
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  const bad = entries.find((e) => !isAddressOrCidr(e));
  if (entries.length === 0 || bad !== undefined) {
    throw new InvalidArgumentError(
      `expected true, a hop count, or a comma list of addresses/CIDRs (10.0.0.0/8,::1)${bad !== undefined ? `; "${bad}" is none of them` : ''}`,
    );
  }
  return entries;
}
