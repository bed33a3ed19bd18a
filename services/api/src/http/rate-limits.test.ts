import { describe, expect, it } from "vitest";
import { keyIdOf, limitAddress } from "./rate-limits.ts";

describe("what the limits count", () => {
  it("counts IPv4 as it is and IPv4-mapped IPv6 as IPv4", () => {
    expect(limitAddress("203.0.113.7")).toBe("203.0.113.7");
    expect(limitAddress("::ffff:203.0.113.7")).toBe("203.0.113.7");
  });

  it("counts IPv6 by its /64, however it is written", () => {
    expect(limitAddress("2001:db8:1:2:aaaa:bbbb:cccc:dddd")).toBe("2001:db8:1:2::/64");
    expect(limitAddress("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(limitAddress("2001:0db8:0001:0002:0000:0000:0000:0009")).toBe("2001:db8:1:2::/64");
    expect(limitAddress("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(limitAddress("::1")).toBe("0:0:0:0::/64");
    expect(limitAddress("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(limitAddress("2001:db8:1:3::1")).not.toBe(limitAddress("2001:db8:1:2::1"));
  });

  it("reads IPv4-mapped IPv6 in every spelling as the IPv4 address, not as one shared /64", () => {
    // Written out, hex-tailed or in capitals, it is the same IPv4 client: all of them
    // counted as 0:0:0:0::/64 (so one client's failures blocked every IPv4 client written so).
    for (const form of ["0:0:0:0:0:ffff:203.0.113.7", "::ffff:cb00:7107", "::FFFF:CB00:7107", "0000:0000:0000:0000:0000:FFFF:203.0.113.7"]) {
      expect([form, limitAddress(form)]).toEqual([form, "203.0.113.7"]);
    }
    expect(limitAddress("::ffff:cb00:7108")).not.toBe(limitAddress("::ffff:cb00:7107"));
  });

  it("places the groups around an embedded IPv4 tail right (it fills two groups, not one)", () => {
    expect(limitAddress("1::2:3:4:5:6.7.8.9")).toBe("1:0:2:3::/64");
    expect(limitAddress("1:0:2:3:4:5:6.7.8.9")).toBe("1:0:2:3::/64");
    expect(limitAddress("1::2:3:4:5:6.7.8.9")).not.toBe(limitAddress("1::3:4:5:6:6.7.8.9"));
  });

  it("counts an address a proxy wrote with a port as the address", () => {
    // Per port, every new connection would be a new client and the limits would never bite.
    expect(limitAddress("203.0.113.7:51234")).toBe("203.0.113.7");
    expect(limitAddress("[2001:db8:1:2::9]:443")).toBe("2001:db8:1:2::/64");
    expect(limitAddress("[2001:db8:1:2::9]")).toBe("2001:db8:1:2::/64");
  });

  it("reads the key id of a well-formed key only", () => {
    const secret = "A".repeat(43);
    expect(keyIdOf(`ik_live_0123456789abcdef_${secret}`)).toBe("0123456789abcdef");
    expect(keyIdOf(`ik_dev_0123456789abcdef_${secret}`)).toBe("0123456789abcdef");
    expect(keyIdOf(`ik_live_0123456789abcdef_${secret}x`)).toBeNull();
    expect(keyIdOf("ik_live_short_x")).toBeNull();
    expect(keyIdOf("not-a-key")).toBeNull();
  });
});
