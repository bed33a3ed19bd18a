import { describe, expect, it } from "vitest";
import { classifyClamdReply, MAX_REPLY_CHARS, parseVersionReply } from "./reply.ts";

describe("classifyClamdReply", () => {
  it("clean only for exactly 'stream: OK' (with or without terminator)", () => {
    expect(classifyClamdReply("stream: OK\0")).toEqual({ outcome: "clean" });
    expect(classifyClamdReply("stream: OK\n")).toEqual({ outcome: "clean" });
    expect(classifyClamdReply("stream: OK")).toEqual({ outcome: "clean" });
    expect(classifyClamdReply("stream: OK\r\n")).toEqual({ outcome: "clean" });
  });

  it.each([
    "OK",
    "stream: ok",
    "stream: OKAY",
    "stream:OK",
    "/tmp/x: OK",
    "stream: OK trailing",
    "PONG",
    "ClamAV 1.4.6",
    "stream: OK\0garbage",
    "stream: OK\0stream: Something",
  ])("anything else is never clean: %j", (raw) => {
    expect(classifyClamdReply(raw).outcome).toBe("error");
  });

  it("empty and whitespace-only replies are errors", () => {
    for (const raw of ["", "\0", "\n", "  \0 \n", "\r\n\0"]) {
      expect(classifyClamdReply(raw)).toMatchObject({ outcome: "error", kind: "empty_reply" });
    }
  });

  it("infected with the signature name", () => {
    expect(classifyClamdReply("stream: Intake.Test.EICAR.UNOFFICIAL FOUND\0")).toEqual({
      outcome: "infected",
      signature: "Intake.Test.EICAR.UNOFFICIAL",
    });
    expect(classifyClamdReply("stream: Win.Test.EICAR_HDB-1 FOUND\n")).toEqual({ outcome: "infected", signature: "Win.Test.EICAR_HDB-1" });
    // ExtendedDetectionInfo style names keep their suffix
    expect(classifyClamdReply("stream: Eicar-Signature(44d88612fea8a8f36de82e1278abb02f:68) FOUND")).toMatchObject({
      outcome: "infected",
      signature: "Eicar-Signature(44d88612fea8a8f36de82e1278abb02f:68)",
    });
    // Other heuristics are detections, not "unscannable"
    expect(classifyClamdReply("stream: Heuristics.Broken.Executable FOUND")).toMatchObject({ outcome: "infected" });
  });

  it("FOUND without a name is an error", () => {
    expect(classifyClamdReply("stream:  FOUND").outcome).toBe("error");
    expect(classifyClamdReply("stream: FOUND").outcome).toBe("error");
  });

  it("limits exceeded -> unscannable", () => {
    for (const sig of [
      "Heuristics.Limits.Exceeded.MaxFileSize",
      "Heuristics.Limits.Exceeded.MaxScanSize",
      "Heuristics.Limits.Exceeded.MaxRecursion",
      "Heuristics.Limits.Exceeded.MaxFiles",
      "Heuristics.Limits.Exceeded.MaxScanTime",
      "Heuristics.Limits.Exceeded",
    ]) {
      const c = classifyClamdReply(`stream: ${sig} FOUND\0`);
      expect(c).toMatchObject({ outcome: "unscannable", kind: "scan_limit_exceeded", signature: sig });
      if (c.outcome === "unscannable") expect(c.reason).toContain(sig);
    }
  });

  it("encrypted -> unscannable", () => {
    for (const sig of ["Heuristics.Encrypted.Zip", "Heuristics.Encrypted.RAR", "Heuristics.Encrypted.7Zip", "Heuristics.Encrypted.PDF"]) {
      expect(classifyClamdReply(`stream: ${sig} FOUND\0`)).toMatchObject({ outcome: "unscannable", kind: "encrypted", signature: sig });
    }
  });

  it("the project's Intake.Unscannable.* container signatures -> unscannable, anything else named Intake.* stays infected", () => {
    for (const sig of ["Intake.Unscannable.CAB.UNOFFICIAL", "Intake.Unscannable.7z.UNOFFICIAL"]) {
      expect(classifyClamdReply(`stream: ${sig} FOUND\0`)).toMatchObject({ outcome: "unscannable", kind: "unsupported_container", signature: sig });
    }
    expect(classifyClamdReply("stream: Intake.Test.EICAR.UNOFFICIAL FOUND\0")).toEqual({ outcome: "infected", signature: "Intake.Test.EICAR.UNOFFICIAL" });
    expect(classifyClamdReply("stream: Win.Unscannable.CAB FOUND\0")).toMatchObject({ outcome: "infected" });
  });

  it("stream size limit -> unscannable; other ERROR replies -> error", () => {
    expect(classifyClamdReply("INSTREAM size limit exceeded. ERROR\0")).toMatchObject({ outcome: "unscannable", kind: "stream_limit_exceeded" });
    for (const raw of [
      "stream: Can't allocate memory ERROR\0",
      "Error processing command. ERROR\0",
      "UNKNOWN COMMAND\0",
      "COMMAND READ TIMED OUT\0",
      "stream: lstat() failed: No such file or directory. ERROR",
    ]) {
      const c = classifyClamdReply(raw);
      expect(c.outcome).toBe("error");
    }
    expect(classifyClamdReply("Error processing command. ERROR")).toMatchObject({ kind: "error_reply" });
    expect(classifyClamdReply("UNKNOWN COMMAND")).toMatchObject({ kind: "unknown_reply" });
  });

  it("precedence over several records: infected > error > unscannable > clean", () => {
    expect(classifyClamdReply("stream: OK\0stream: X.Y FOUND\0")).toEqual({ outcome: "infected", signature: "X.Y" });
    expect(classifyClamdReply("stream: Heuristics.Encrypted.Zip FOUND\nstream: X.Y FOUND\n")).toEqual({ outcome: "infected", signature: "X.Y" });
    expect(classifyClamdReply("stream: Heuristics.Encrypted.Zip FOUND\nsomething ERROR\n").outcome).toBe("error");
    expect(classifyClamdReply("stream: Heuristics.Encrypted.Zip FOUND\nstream: OK\n").outcome).toBe("unscannable");
    expect(classifyClamdReply("stream: OK\nstream: OK\n").outcome).toBe("clean");
  });

  it("control characters and oversized replies are errors", () => {
    expect(classifyClamdReply("stream: OK\x01").outcome).toBe("error");
    expect(classifyClamdReply("stream: \x1bX FOUND").outcome).toBe("error");
    expect(classifyClamdReply("stream: OK" + " ".repeat(MAX_REPLY_CHARS))).toMatchObject({ outcome: "error", kind: "unknown_reply" });
  });

  it("runs in linear time on hostile input", () => {
    const hostile = "stream: " + "FOUND ".repeat(2_000) + "\0".repeat(100) + ":".repeat(5_000);
    const t = performance.now();
    for (let i = 0; i < 200; i++) classifyClamdReply(hostile);
    expect(performance.now() - t).toBeLessThan(2_000);
  });
});

describe("parseVersionReply", () => {
  it("official databases", () => {
    expect(parseVersionReply("ClamAV 1.4.6/27441/Sat Nov 21 09:25:02 2026\0")).toEqual({
      engine: "ClamAV 1.4.6",
      signatures: "27441",
      signaturesDate: "Sat Nov 21 09:25:02 2026",
      raw: "ClamAV 1.4.6/27441/Sat Nov 21 09:25:02 2026",
    });
  });
  it("custom databases only", () => {
    expect(parseVersionReply("ClamAV 1.4.6\0")).toEqual({ engine: "ClamAV 1.4.6", signatures: "none", raw: "ClamAV 1.4.6" });
  });
  it("rejects anything else", () => {
    for (const raw of ["", "\0", "PONG", "stream: OK", "ClamAV 1\0ClamAV 2\0", "ClamAV \x01"]) expect(parseVersionReply(raw)).toBeNull();
  });
});
