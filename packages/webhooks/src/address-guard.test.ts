import { describe, expect, it } from "vitest";
import { AddressRefusedError, checkEndpointUrl, classifyAddress, guardedLookup } from "./address-guard.ts";

describe("webhook address guard", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["::1", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::127.0.0.1", "loopback"], // IPv4-compatible
    ["64:ff9b::7f00:1", "loopback"], // NAT64
    ["2002:7f00:1::", "loopback"], // 6to4
    ["::ffff:0:7f00:1", "loopback"], // IPv4-translated
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "private"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["::ffff:10.0.0.1", "private"],
    ["169.254.169.254", "link-local"],
    ["::ffff:169.254.169.254", "link-local"],
    ["64:ff9b::a9fe:a9fe", "link-local"],
    ["fe80::1", "link-local"],
    ["fe80::1%eth0", "link-local"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["ff02::1", "multicast"],
    ["255.255.255.255", "reserved"],
    ["240.0.0.1", "reserved"],
    ["2001:db8::1", "reserved"],
    ["not-an-ip", "reserved"],
    ["64:ff9b:1::7f00:1", "reserved"], // local-use NAT64 (RFC 8215): a site's translator, to its own 127.0.0.1
    ["64:ff9b:1:a9fe:a9fe::", "reserved"],
    ["93.184.215.14", "public"],
    ["172.32.0.1", "public"],
    ["2606:4700::1111", "public"],
    ["::ffff:8.8.8.8", "public"],
  ])("%s is %s", (address, cls) => {
    expect(classifyAddress(address)).toBe(cls);
  });

  it("refuses IP-literal URLs in closed classes, including the forms WHATWG parsing normalises", () => {
    for (const url of ["http://127.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/latest/meta-data", "http://10.0.0.5/", "http://[fe80::1]/", "http://0.0.0.0/"]) {
      expect(() => checkEndpointUrl(url, { requireHttps: false, allow: [] }), url).toThrow(AddressRefusedError);
    }
    expect(checkEndpointUrl("http://127.0.0.1:9/", { requireHttps: false, allow: ["loopback"] }).port).toBe("9");
    // The loopback allowance opens loopback only.
    expect(() => checkEndpointUrl("http://169.254.169.254/", { requireHttps: false, allow: ["loopback"] })).toThrow(/link-local/);
    expect(() => checkEndpointUrl("http://0.0.0.0/", { requireHttps: false, allow: ["loopback", "private", "link-local"] })).toThrow(/unspecified/);
  });

  it("refuses other schemes, plain http where https is required, and credentials in the URL", () => {
    expect(() => checkEndpointUrl("ftp://example.com/", { requireHttps: false, allow: [] })).toThrow(/http\(s\)/);
    expect(() => checkEndpointUrl("file:///etc/passwd", { requireHttps: false, allow: [] })).toThrow(/http\(s\)/);
    expect(() => checkEndpointUrl("http://example.com/", { requireHttps: true, allow: [] })).toThrow(/https/);
    expect(() => checkEndpointUrl("https://user:pw@example.com/", { requireHttps: true, allow: [] })).toThrow(/credentials/);
    expect(() => checkEndpointUrl("not a url", { requireHttps: false, allow: [] })).toThrow(/valid absolute URL/);
    expect(checkEndpointUrl("https://example.com/hook", { requireHttps: true, allow: [] }).hostname).toBe("example.com");
  });

  it("refuses a hostname that resolves to loopback at lookup time, and passes it with the allowance", async () => {
    const lookup = (allow: ("loopback" | "private" | "link-local")[]) =>
      new Promise<unknown>((resolve, reject) => guardedLookup(allow)("localhost", { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));
    await expect(lookup([])).rejects.toThrow(/loopback/);
    const addresses = (await lookup(["loopback"])) as { address: string }[];
    expect(addresses.length).toBeGreaterThan(0);
  });
});
