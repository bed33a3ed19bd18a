import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from "node:dns";
import { BlockList, isIP } from "node:net";

/**
 * The SSRF guard of webhook delivery. A tenant names the URL, so without it a tenant could
 * make our workers POST to anything they can reach: the cloud metadata service
 * (169.254.169.254), Redis on localhost, the private network. What counts is the address the
 * connection is really made to: the guard runs inside the socket's own DNS lookup (see
 * guardedLookup), so a name that resolves to a public address when checked and to a private
 * one when connecting (DNS rebinding) gets no second resolution to hide behind.
 */

/** Classes an operator may open (WEBHOOK_ALLOW_ADDRESSES); tests open "loopback". */
export type AllowableAddressClass = "loopback" | "private" | "link-local";
/** Never a webhook target, whatever the configuration says. */
export type ForbiddenAddressClass = "unspecified" | "multicast" | "reserved";
export type AddressClass = AllowableAddressClass | ForbiddenAddressClass | "public";

/** A delivery refused before any byte was sent: the URL or the address it resolves to is not allowed. */
export class AddressRefusedError extends Error {
  readonly code: "address_refused" | "url_refused";
  constructor(code: AddressRefusedError["code"], message: string) {
    super(message);
    this.name = "AddressRefusedError";
    this.code = code;
  }
}

function subnets(list: [string, number][]): BlockList {
  const b = new BlockList();
  for (const [net, prefix] of list) b.addSubnet(net, prefix, isIP(net) === 6 ? "ipv6" : "ipv4");
  return b;
}

/**
 * Ranges by class (IANA IPv4/IPv6 special-purpose registries). Node's BlockList matches an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) against the IPv4 rules itself; the other forms
 * that embed an IPv4 address are unwrapped first (embeddedIPv4).
 */
const CLASSES: [AddressClass, BlockList][] = [
  ["unspecified", subnets([["0.0.0.0", 8], ["::", 128]])],
  ["loopback", subnets([["127.0.0.0", 8], ["::1", 128]])],
  // RFC 1918, CGNAT (RFC 6598: the provider's network, not the internet), ULA fc00::/7,
  // and the deprecated site-local fec0::/10.
  ["private", subnets([["10.0.0.0", 8], ["172.16.0.0", 12], ["192.168.0.0", 16], ["100.64.0.0", 10], ["fc00::", 7], ["fec0::", 10]])],
  // 169.254/16 holds the metadata address 169.254.169.254 of AWS, GCP and Azure.
  ["link-local", subnets([["169.254.0.0", 16], ["fe80::", 10]])],
  ["multicast", subnets([["224.0.0.0", 4], ["ff00::", 8]])],
  // IETF assignments, documentation, benchmarking, class E and broadcast; Teredo, the IPv6
  // documentation and discard prefixes, and the local-use NAT64 prefix 64:ff9b:1::/48
  // (RFC 8215: a site's own translator, not globally reachable, which may map its addresses
  // to the site's private or loopback IPv4 at any prefix length): nothing a receiver lives at.
  ["reserved", subnets([["192.0.0.0", 24], ["192.0.2.0", 24], ["198.18.0.0", 15], ["198.51.100.0", 24], ["203.0.113.0", 24], ["240.0.0.0", 4], ["2001::", 32], ["2001:db8::", 32], ["100::", 64], ["64:ff9b:1::", 48]])],
];

/** The eight 16-bit groups of an IPv6 address (already known valid by isIP). */
function groupsOf(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    // A dotted IPv4 tail (::ffff:1.2.3.4) is two groups.
    const [a, b, c, d] = tail.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const left = head ? head.split(":") : [];
  const right = rest ? rest.split(":") : [];
  const zeros = rest === undefined ? [] : new Array(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16));
}

/**
 * The IPv4 address an IPv6 address stands for, where it embeds one that a gateway would
 * reach: NAT64 (64:ff9b::/96, RFC 6052), 6to4 (2002::/16, RFC 3056), IPv4-compatible
 * (::a.b.c.d, deprecated) and IPv4-translated (::ffff:0:a.b.c.d, RFC 2765).
 */
function embeddedIPv4(groups: number[]): string | null {
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const [g0, g1, g2, , g4, g5, g6, g7] = groups as [number, number, number, number, number, number, number, number];
  if (g0 === 0x64 && g1 === 0xff9b && groups.slice(2, 6).every((g) => g === 0)) return v4(g6, g7); // NAT64
  if (g0 === 0x2002) return v4(g1, g2); // 6to4
  const zeroTo = (n: number) => groups.slice(0, n).every((g) => g === 0);
  if (zeroTo(5) && g5 === 0xffff) return v4(g6, g7); // IPv4-mapped
  if (zeroTo(6) && (g6 !== 0 || g7 > 1)) return v4(g6, g7); // IPv4-compatible (:: and ::1 are IPv6's own)
  if (zeroTo(4) && g4 === 0xffff && g5 === 0) return v4(g6, g7); // IPv4-translated
  return null;
}

/** Which class an IP address belongs to; anything unparseable is "reserved" (refused). */
export function classifyAddress(address: string): AddressClass {
  const bare = address.replace(/^\[|\]$/g, "").split("%")[0]!; // brackets, IPv6 zone id
  const family = isIP(bare);
  if (family === 0) return "reserved";
  if (family === 6) {
    const inner = embeddedIPv4(groupsOf(bare));
    if (inner) return classifyAddress(inner);
  }
  const type = family === 6 ? "ipv6" : "ipv4";
  for (const [cls, list] of CLASSES) if (list.check(bare, type)) return cls;
  if (bare === "255.255.255.255") return "reserved";
  return "public";
}

/** Throws unless a connection to this address is allowed (public, or a class the configuration opens). */
export function assertAddressAllowed(address: string, allow: readonly AllowableAddressClass[]): void {
  const cls = classifyAddress(address);
  if (cls === "public") return;
  if ((allow as readonly string[]).includes(cls)) return;
  throw new AddressRefusedError("address_refused", `webhook endpoint resolves to a ${cls} address (${address}), which is not allowed${cls === "loopback" || cls === "private" || cls === "link-local" ? ` (WEBHOOK_ALLOW_ADDRESSES does not name ${cls})` : ""}`);
}

export interface UrlRules {
  /** Production: https only. */
  requireHttps: boolean;
  allow: readonly AllowableAddressClass[];
}

/**
 * The URL as a webhook target: http(s), https where required, no credentials in it (they
 * would sit in logs and pages), and, when the host is an IP literal, an allowed address
 * (Node connects to a literal without any lookup, so the guarded lookup never sees it).
 * Returns the parsed URL; WHATWG parsing already turns 2130706433 or 0x7f.1 into 127.0.0.1.
 */
export function checkEndpointUrl(raw: string, rules: UrlRules): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AddressRefusedError("url_refused", "the webhook URL is not a valid absolute URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new AddressRefusedError("url_refused", `the webhook URL must be http(s), not ${url.protocol.replace(/:$/, "")}`);
  if (rules.requireHttps && url.protocol !== "https:") throw new AddressRefusedError("url_refused", "the webhook URL must be https");
  if (url.username || url.password) throw new AddressRefusedError("url_refused", "the webhook URL may not carry credentials (user:password@)");
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host)) assertAddressAllowed(host, rules.allow);
  return url;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http.request / net.connect: resolves as Node would, then refuses the
 * connection unless EVERY address the name resolved to is allowed (with several, Node's
 * happy-eyeballs may try any of them).
 */
export function guardedLookup(allow: readonly AllowableAddressClass[]) {
  return (hostname: string, options: { family?: number | string; all?: boolean; hints?: number }, callback: LookupCallback): void => {
    const opts: LookupAllOptions = { all: true, ...(options.hints !== undefined ? { hints: options.hints } : {}) };
    if (options.family === 4 || options.family === 6) opts.family = options.family;
    dnsLookup(hostname, opts, (err, addresses) => {
      if (err) return callback(err, []);
      try {
        if (addresses.length === 0) throw new AddressRefusedError("address_refused", `${hostname} resolved to no address`);
        for (const a of addresses) assertAddressAllowed(a.address, allow);
      } catch (refusal) {
        return callback(refusal as NodeJS.ErrnoException, []);
      }
      if (options.all) return callback(null, addresses);
      return callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}
