import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The signatures the project's clamd loaded, read from its own config and database files
 * (infra/clamd/up.sh writes $DATA_DIR/clamd/clamd.conf and the .ndb/.hdb it names), so a
 * test expects the name clamd will report for a file, not a literal that could drift from
 * the database.
 */
export interface LoadedSignatures {
  databaseDirectory: string;
  /** The name clamd reports for these bytes, or null when no loaded signature matches them. */
  nameFor(bytes: Buffer): string | null;
}

interface BodySignature {
  name: string;
  pattern: Buffer;
}
interface HashSignature {
  name: string;
  md5: string;
  size: number;
}

/**
 * clamd appends ".UNOFFICIAL" to the names of signatures from databases that are not
 * signed by Cisco-Talos (every .ndb/.hdb we write), as it reports them in "FOUND" replies.
 */
const UNOFFICIAL = ".UNOFFICIAL";

export function loadedSignatures(dataDir: string): LoadedSignatures {
  const conf = readFileSync(join(dataDir, "clamd", "clamd.conf"), "utf8");
  const databaseDirectory = /^DatabaseDirectory\s+(.+)$/m.exec(conf)?.[1]?.trim();
  if (!databaseDirectory) throw new Error(`${join(dataDir, "clamd", "clamd.conf")} names no DatabaseDirectory`);
  const body: BodySignature[] = [];
  const hashes: HashSignature[] = [];
  for (const file of readdirSync(databaseDirectory)) {
    const text = () => readFileSync(join(databaseDirectory, file), "utf8").split("\n").filter((l) => l.trim() && !l.startsWith("#"));
    if (file.endsWith(".ndb")) {
      // Name:TargetType:Offset:HexSignature (ClamAV "Creating signatures", extended format).
      for (const line of text()) {
        const [name, , , hex] = line.split(":");
        // Only plain hex: wildcards and alternatives are not ours to interpret here.
        if (name && hex && /^([0-9a-f]{2})+$/i.test(hex)) body.push({ name, pattern: Buffer.from(hex, "hex") });
      }
    } else if (file.endsWith(".hdb")) {
      // MD5:Size:Name
      for (const line of text()) {
        const [md5, size, name] = line.split(":");
        if (md5 && size && name) hashes.push({ name, md5: md5.toLowerCase(), size: Number(size) });
      }
    }
  }
  if (body.length === 0 && hashes.length === 0) {
    throw new Error(
      `clamd's database directory ${databaseDirectory} holds no .ndb/.hdb signatures: these tests need infra/clamd's test database ` +
        "(run infra/clamd/up.sh with CLAMD_DATABASE=test, as infra/bin/test does on a machine without official databases)",
    );
  }
  return {
    databaseDirectory,
    nameFor: (bytes) => {
      const md5 = createHash("md5").update(bytes).digest("hex");
      const hash = hashes.find((h) => h.md5 === md5 && h.size === bytes.length);
      if (hash) return hash.name + UNOFFICIAL;
      const found = body.find((b) => bytes.includes(b.pattern));
      return found ? found.name + UNOFFICIAL : null;
    },
  };
}
