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

  it("reads the key id of a well-formed key only", () => {
    const secret = "A".repeat(43);
    expect(keyIdOf(`ik_live_0123456789abcdef_${secret}`)).toBe("0123456789abcdef");
    expect(keyIdOf(`ik_dev_0123456789abcdef_${secret}`)).toBe("0123456789abcdef");
    expect(keyIdOf(`ik_live_0123456789abcdef_${secret}x`)).toBeNull();
    expect(keyIdOf("ik_live_short_x")).toBeNull();
    expect(keyIdOf("not-a-key")).toBeNull();
  });
});
