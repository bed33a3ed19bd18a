import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { TenantPolicy } from "@intake/domain";

/**
 * What the tour changed and has not put back yet, kept in $DATA_DIR/tour/undo.json before
 * each change: a step puts it back in its `finally`, and a tour that was killed before it
 * could (SIGKILL, a closed terminal) has it put back by the next run, before anything else.
 * So the tour is safe to run again whatever happened to the last one.
 */
export type Change =
  | { kind: "tenant-policy"; tenantId: string; policy: TenantPolicy }
  | { kind: "rule-files"; paths: string[] }
  | { kind: "database-dates"; files: { path: string; atimeMs: number; mtimeMs: number }[] };

export interface Undoers {
  "tenant-policy": (c: Extract<Change, { kind: "tenant-policy" }>) => Promise<string>;
  "rule-files": (c: Extract<Change, { kind: "rule-files" }>) => Promise<string>;
  "database-dates": (c: Extract<Change, { kind: "database-dates" }>) => Promise<string>;
}

export class UndoJournal {
  readonly #file: string;
  readonly #undoers: Undoers;
  constructor(dataDir: string, undoers: Undoers) {
    this.#file = join(dataDir, "tour", "undo.json");
    this.#undoers = undoers;
  }

  /** Records a change about to be made; put it back with undo(). */
  record(change: Change): Change {
    this.#write([...this.#read().filter((c) => c.kind !== change.kind), change]);
    return change;
  }

  /** Puts a recorded change back (a no-op once done); what was done, for the output. */
  async undo(change: Change): Promise<string | null> {
    if (!this.#read().some((c) => c.kind === change.kind)) return null;
    const done = await this.#run(change);
    this.#write(this.#read().filter((c) => c.kind !== change.kind));
    return done;
  }

  /** The caller has put the change back itself (as part of a step): drops it from the journal. */
  forget(change: Change): void {
    this.#write(this.#read().filter((c) => c.kind !== change.kind));
  }

  /** Changes a previous tour left behind, put back now. */
  async replayLeftovers(): Promise<string[]> {
    const done: string[] = [];
    for (const c of this.#read()) {
      const d = await this.undo(c);
      if (d) done.push(d);
    }
    return done;
  }

  #run(c: Change): Promise<string> {
    switch (c.kind) {
      case "tenant-policy":
        return this.#undoers["tenant-policy"](c);
      case "rule-files":
        return this.#undoers["rule-files"](c);
      case "database-dates":
        return this.#undoers["database-dates"](c);
    }
  }

  #read(): Change[] {
    if (!existsSync(this.#file)) return [];
    return JSON.parse(readFileSync(this.#file, "utf8")) as Change[];
  }

  #write(changes: Change[]): void {
    if (changes.length === 0) {
      rmSync(this.#file, { force: true });
      return;
    }
    mkdirSync(dirname(this.#file), { recursive: true });
    // Written whole and renamed: a kill mid-write leaves the previous journal, not half of one.
    writeFileSync(`${this.#file}.new`, JSON.stringify(changes, null, 2));
    renameSync(`${this.#file}.new`, this.#file);
  }
}

/** Puts the files' dates back as they were. */
export function restoreDates(files: { path: string; atimeMs: number; mtimeMs: number }[]): void {
  for (const f of files) if (existsSync(f.path)) utimesSync(f.path, f.atimeMs / 1000, f.mtimeMs / 1000);
}
