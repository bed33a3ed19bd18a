/**
 * The audit trail's hash chain: how a row's hash is computed, and the walk that checks
 * every link. Each row's hash covers its own content and the previous row's hash, so an
 * edit to any row breaks that row's hash, a row recomputed to hide an edit breaks the next
 * row's prev_hash, and a deleted row leaves a gap in seq. audit_chain_head (one row, id 1)
 * holds the last link: appenders lock it (audit-log.ts), the walk ends on it.
 *
 * What the chain cannot show on its own: someone with write access who rewrites every row
 * from the edit to the end and the head too. Against that, operators keep an anchor (a seq
 * and its hash, printed by `audit verify`) outside the database and pass it back later.
 */
import { createHash } from "node:crypto";
import type { Knex } from "knex";

/** prev_hash of the first row (seq 1), and the head's hash while the trail is empty. */
export const GENESIS_HASH = "0".repeat(64);

/**
 * Names the serialization below. It must never change in place: rows already written were
 * hashed with it. A new format needs a new tag and a column saying which rows use it.
 */
const FORMAT = "intake.audit.v1";

/** The columns a link's hash covers, as stored (detail is the JSON text exactly as written). */
export interface ChainedContent {
  seq: number;
  at: number;
  actor: string;
  actorId: string | null;
  action: string;
  uploadId: string | null;
  tenantId: string | null;
  objectKey: string | null;
  detail: string;
  justification: string | null;
  stateBefore: string | null;
  stateAfter: string | null;
  prevHash: string;
}

/**
 * A link's hash, in two steps. The content digest is the sha256 (hex) of a JSON array of the
 * row's own fields in a fixed order: JSON.stringify of strings, integers and null is
 * deterministic, and the array's positions keep a value from moving from one field to
 * another unnoticed (unlike a concatenation). The link hash is the sha256 (hex) of
 * `FORMAT:seq:prev_hash:digest`, text of fixed shape (a decimal and two hex digests) that
 * PostgreSQL computes alike in the statement that appends (audit-log.ts), so the writer
 * needs no round trip between reading the head and writing the link.
 */
export function linkHash(c: ChainedContent): string {
  return chainLink(c.seq, c.prevHash, contentDigest(c));
}

export function contentDigest(c: Omit<ChainedContent, "seq" | "prevHash">): string {
  const canonical = JSON.stringify([FORMAT, c.at, c.actor, c.actorId, c.action, c.uploadId, c.tenantId, c.objectKey, c.detail, c.justification, c.stateBefore, c.stateAfter]);
  return sha256(canonical);
}

export function chainLink(seq: number, prevHash: string, digest: string): string {
  return sha256(`${FORMAT}:${seq}:${prevHash}:${digest}`);
}

/** The prefix of the text chainLink hashes, for the SQL that computes it. */
export const LINK_FORMAT = FORMAT;

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

/**
 * Text as the database will give it back. Both drivers encode strings as UTF-8, which turns
 * a lone surrogate (possible in any JS string, e.g. a justification from a JSON body) into
 * U+FFFD; hashed before that, the row would read back as tampered. So text is made
 * well-formed before it is hashed and stored.
 */
export function storedText(s: string): string;
export function storedText(s: string | null | undefined): string | null;
export function storedText(s: string | null | undefined): string | null {
  // With the u flag a well-formed pair is one code point: only lone surrogates match.
  return s === null || s === undefined ? null : s.replace(/\p{Surrogate}/gu, "\uFFFD");
}

/** A row of audit_events as the walk reads it. */
function contentOf(r: Record<string, any>): ChainedContent {
  return {
    seq: Number(r.seq),
    at: Number(r.at),
    actor: r.actor,
    actorId: r.actor_id ?? null,
    action: r.action,
    uploadId: r.upload_id ?? null,
    tenantId: r.tenant_id ?? null,
    objectKey: r.object_key ?? null,
    detail: r.detail,
    justification: r.justification ?? null,
    stateBefore: r.state_before ?? null,
    stateAfter: r.state_after ?? null,
    prevHash: r.prev_hash ?? "",
  };
}

export type AuditChainProblem =
  | "hash_mismatch" // the row's content is not what its hash covers: edited after it was written
  | "prev_hash_mismatch" // the row does not point at the row before it: that one was replaced or recomputed
  | "seq_gap" // a seq is missing (a row deleted) or repeated
  | "head_mismatch" // the head does not name the last row: rows removed from the end, or appended around the chain
  | "unchained_row" // a row with no seq: written around the chain
  | "anchor_mismatch" // a recorded (seq, hash) no longer matches: the chain was rewritten from there on
  | "head_missing"; // audit_chain_head has no row 1

export interface AuditChainBreak {
  problem: AuditChainProblem;
  /** The row named (null when the problem is not one row's, e.g. the head). */
  seq: number | null;
  id: number | null;
  message: string;
}

export interface AuditChainLink {
  seq: number;
  hash: string;
}

export type AuditChainVerdict =
  | { ok: true; count: number; head: AuditChainLink }
  | { ok: false; count: number; head: AuditChainLink | null; broken: AuditChainBreak };

export interface VerifyOptions {
  /** Links recorded earlier (outside the database) that must still be in the chain. */
  anchors?: AuditChainLink[];
  /** Rows read per query. */
  pageSize?: number;
}

/**
 * Walks the chain from seq 1 to the head, in pages, and names the first broken link; `count`
 * is the number of rows that verified before it. Writers may append meanwhile: the head is
 * read first and the walk stops at its seq, and every row up to it was committed with the
 * head that named it.
 */
export async function verifyAuditChain(db: Knex, opts: VerifyOptions = {}): Promise<AuditChainVerdict> {
  const pageSize = opts.pageSize ?? 1000;
  const anchors = new Map((opts.anchors ?? []).map((a) => [a.seq, a.hash]));
  const headRow = await db("audit_chain_head").where({ id: 1 }).first();
  if (!headRow) return { ok: false, count: 0, head: null, broken: { problem: "head_missing", seq: null, id: null, message: "audit_chain_head has no row: the chain's last link is unknown" } };
  const head: AuditChainLink = { seq: Number(headRow.seq), hash: headRow.hash };
  const broken = (count: number, b: AuditChainBreak): AuditChainVerdict => ({ ok: false, count, head, broken: b });

  let prev: AuditChainLink = { seq: 0, hash: GENESIS_HASH };
  for (;;) {
    const rows = await db("audit_events").where("seq", ">", prev.seq).andWhere("seq", "<=", head.seq).orderBy("seq").limit(pageSize);
    for (const r of rows) {
      const c = contentOf(r);
      const at = { seq: c.seq, id: Number(r.id) };
      if (c.seq !== prev.seq + 1) {
        const message = c.seq === prev.seq ? `seq ${c.seq} appears twice` : `seq ${prev.seq + 1}${c.seq - 1 > prev.seq + 1 ? `..${c.seq - 1}` : ""} missing before this row (deleted)`;
        return broken(prev.seq, { problem: "seq_gap", ...at, message });
      }
      if (c.prevHash !== prev.hash) return broken(prev.seq, { problem: "prev_hash_mismatch", ...at, message: `prev_hash ${c.prevHash || "(none)"} is not the hash of seq ${prev.seq} (${prev.hash})` });
      const expected = linkHash(c);
      if (r.hash !== expected) return broken(prev.seq, { problem: "hash_mismatch", ...at, message: `stored hash ${r.hash ?? "(none)"} does not match the row's content (${expected}): the row was changed after it was written` });
      const anchor = anchors.get(c.seq);
      if (anchor !== undefined && anchor !== r.hash) return broken(prev.seq, { problem: "anchor_mismatch", ...at, message: `the recorded anchor says seq ${c.seq} had hash ${anchor}, it now has ${r.hash}: the chain was rewritten from here on` });
      prev = { seq: c.seq, hash: r.hash };
    }
    if (rows.length < pageSize) break;
  }
  if (prev.seq !== head.seq || prev.hash !== head.hash) {
    return broken(prev.seq, { problem: "head_mismatch", seq: prev.seq || null, id: null, message: `the head names seq ${head.seq} (${head.hash}) but the chain ends at seq ${prev.seq} (${prev.hash}): rows were removed from the end or the head was changed` });
  }
  for (const a of anchors.keys()) {
    if (a > head.seq) return broken(prev.seq, { problem: "anchor_mismatch", seq: a, id: null, message: `the recorded anchor names seq ${a}, beyond the head (${head.seq}): rows were removed from the end` });
  }
  // The walk reads each seq once: a second row under a seq already seen (possible only with
  // the unique index dropped) or one below 1 is found by counting.
  const counted = Number((await db("audit_events").where("seq", "<=", head.seq).count({ n: "*" }).first())?.n ?? 0);
  if (counted !== head.seq) {
    const odd = await db("audit_events").where("seq", "<", 1).orWhereIn("seq", db("audit_events").select("seq").where("seq", "<=", head.seq).groupBy("seq").havingRaw("count(*) > 1")).orderBy("id").first("id", "seq");
    return broken(prev.seq, { problem: "seq_gap", seq: odd ? Number(odd.seq) : null, id: odd ? Number(odd.id) : null, message: `${counted} rows carry seq 1..${head.seq}: a seq is repeated or out of range` });
  }
  // One statement each, so a row committed meanwhile is seen with the head it came with.
  const unchained = await db("audit_events").whereNull("seq").orderBy("id").first("id");
  if (unchained) return broken(prev.seq, { problem: "unchained_row", seq: null, id: Number(unchained.id), message: "a row without seq: written around the chain" });
  const beyond = await db("audit_events").where("seq", ">", db("audit_chain_head").select("seq").where({ id: 1 })).orderBy("seq").first("id", "seq");
  if (beyond) return broken(prev.seq, { problem: "head_mismatch", seq: Number(beyond.seq), id: Number(beyond.id), message: `a row with seq ${beyond.seq} lies beyond the head: appended without moving the head` });
  return { ok: true, count: prev.seq, head };
}

/**
 * Migration 0005: chains the rows written before the chain existed, in id order (the order
 * they were inserted in), and writes the head. On a fresh database the head is seq 0 with
 * the genesis hash.
 */
export async function chainExistingRows(knex: Knex): Promise<void> {
  let prev: AuditChainLink = { seq: 0, hash: GENESIS_HASH };
  let prevOfLast = GENESIS_HASH;
  let lastId = 0;
  for (;;) {
    const rows = await knex("audit_events").where("id", ">", lastId).orderBy("id").limit(500);
    for (const r of rows) {
      const seq = prev.seq + 1;
      const hash = linkHash({ ...contentOf({ ...r, seq }), prevHash: prev.hash });
      await knex("audit_events").where({ id: r.id }).update({ seq, prev_hash: prev.hash, hash });
      prevOfLast = prev.hash;
      prev = { seq, hash };
      lastId = Number(r.id);
    }
    if (rows.length < 500) break;
  }
  await knex("audit_chain_head").insert({ id: 1, seq: prev.seq, hash: prev.hash, prev_hash: prevOfLast });
}
