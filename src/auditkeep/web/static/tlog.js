// auditkeep tlog.js: check auditkeep's transparency log in the browser, with WebCrypto only.
//
// - canonicalize(value): RFC 8785 (JCS) bytes of a JSON value, as the server encodes leaf data
//   (docs/canonical-encoding.md);
// - leafHash / nodeHash: RFC 9162 hashing (SHA-256 with 0x00 / 0x01 prefixes);
// - verifyInclusion (RFC 9162 section 2.1.3.2) and verifyConsistency (section 2.1.4.2);
// - parseVerifierKey, parseCheckpoint, verifyCheckpoint: C2SP signed-note checkpoints signed
//   with Ed25519 by a pinned verifier key (docs/verification.md);
// - verifyEvent: an event served by GET /v1/events, its inclusion proof and checkpoint.
//
// Every check throws VerificationError with a sentence a person can act on; nothing is
// trusted from the server except what a pinned key signed.

const subtle = globalThis.crypto && globalThis.crypto.subtle;
const encoder = new TextEncoder();

export class VerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = "VerificationError";
  }
}

function need(condition, message) {
  if (!condition) throw new VerificationError(message);
}

// -- bytes -----------------------------------------------------------------------------------

export function hexToBytes(hex) {
  need(typeof hex === "string" && /^([0-9a-f]{2})*$/i.test(hex), `not a hex string: ${String(hex).slice(0, 80)}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function base64ToBytes(text) {
  // Strict, padded standard base64 (as the C2SP formats require).
  need(typeof text === "string" && text.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(text),
    `not canonical base64: ${String(text).slice(0, 80)}`);
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  need(bytesToBase64(out) === text, `not canonical base64: ${text.slice(0, 80)}`);
  return out;
}

export function bytesToBase64(bytes) {
  let raw = "";
  for (const b of bytes) raw += String.fromCharCode(b);
  return btoa(raw);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

async function sha256(bytes) {
  need(subtle, "WebCrypto is unavailable: the page must be served over https (or from localhost)");
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

// -- RFC 8785 (JCS) ----------------------------------------------------------------------------

function compareUtf16(a, b) {
  // Sort keys by UTF-16 code units, which is what JavaScript's < on strings compares.
  return a < b ? -1 : a > b ? 1 : 0;
}

function jcs(value) {
  if (value === null || typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    need(Number.isFinite(value), "JSON numbers must be finite");
    return JSON.stringify(value); // ECMAScript Number-to-string: exactly what RFC 8785 requires
  }
  if (typeof value === "string") {
    // JSON.stringify escapes exactly ", \, \b \t \n \f \r and other controls as \u00xx
    // (lower-case hex), and writes everything else as itself: RFC 8785 section 3.2.2.2.
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(jcs).join(",") + "]";
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(compareUtf16);
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + jcs(value[k])).join(",") + "}";
  }
  throw new VerificationError(`cannot canonicalize a ${typeof value}`);
}

/** RFC 8785 canonical JSON text of a parsed JSON value. */
export function canonicalize(value) {
  return jcs(value);
}

/** UTF-8 bytes of the canonical form. */
export function canonicalBytes(value) {
  return encoder.encode(jcs(value));
}

// -- RFC 9162 hashing and proofs ---------------------------------------------------------------

export async function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/** The leaf data of an event as GET /v1/events serves it: the event without seq and hash. */
export function eventLeafData(event) {
  const { seq: _seq, hash: _hash, ...content } = event;
  return canonicalBytes(content);
}

export async function eventLeafHash(event) {
  return leafHash(eventLeafData(event));
}

function checkHash(what, h) {
  need(h instanceof Uint8Array && h.length === 32, `${what} must be 32 bytes, got ${h && h.length}`);
}

function isPowerOfTwo(n) {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}

/**
 * RFC 9162 section 2.1.3.2: is `leaf` leaf number `index` of the tree of `size` leaves whose
 * root is `root`? Throws VerificationError otherwise. Tree sizes are below 2^53.
 */
export async function verifyInclusion(leaf, index, size, proof, root) {
  checkHash("leaf hash", leaf);
  checkHash("root", root);
  proof.forEach((p, i) => checkHash(`inclusion proof hash ${i}`, p));
  need(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && size >= 0,
    `leaf index (${index}) and tree size (${size}) must be whole numbers >= 0`);
  need(index < size, `leaf index ${index} is out of range for a tree of size ${size}`);
  const wrongLength = () => new VerificationError(
    `inclusion proof has ${proof.length} hashes, which is wrong for index ${index} in a tree of size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw wrongLength();
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn !== 0 && fn % 2 === 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw wrongLength();
  need(equalBytes(r, root),
    `the proof leads to root ${bytesToHex(r)}, not the signed root ${bytesToHex(root)} ` +
    `(leaf index ${index}, tree size ${size})`);
}

const EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * RFC 9162 section 2.1.4.2: does the tree (newSize, newRoot) extend (oldSize, oldRoot)?
 * Equal sizes need an empty proof and equal roots; old size 0 needs the empty-tree root.
 */
export async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  checkHash("old root", oldRoot);
  checkHash("new root", newRoot);
  proof.forEach((p, i) => checkHash(`consistency proof hash ${i}`, p));
  need(Number.isSafeInteger(oldSize) && Number.isSafeInteger(newSize) && oldSize >= 0,
    `tree sizes must be whole numbers >= 0, got ${oldSize} and ${newSize}`);
  need(oldSize <= newSize, `old tree size ${oldSize} is larger than new tree size ${newSize}`);
  if (oldSize === 0) {
    need(bytesToHex(oldRoot) === EMPTY_ROOT_HEX, "old root is not the empty-tree hash (old size 0)");
  }
  if (oldSize === newSize) {
    need(proof.length === 0, `a consistency proof between equal sizes must be empty, got ${proof.length} hashes`);
    need(equalBytes(oldRoot, newRoot), `the roots differ for the same tree size ${oldSize}`);
    return;
  }
  if (oldSize === 0) {
    need(proof.length === 0, "a consistency proof from the empty tree must be empty");
    return;
  }
  const wrongLength = () => new VerificationError(
    `consistency proof has ${proof.length} hashes, which is wrong for sizes ${oldSize} -> ${newSize}`);
  if (proof.length === 0) throw wrongLength();
  const path = [...proof];
  if (isPowerOfTwo(oldSize)) path.unshift(oldRoot);
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) throw wrongLength();
    if (fn % 2 === 1 || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (fn !== 0 && fn % 2 === 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw wrongLength();
  need(equalBytes(fr, oldRoot), `the proof does not lead to the old root (sizes ${oldSize} -> ${newSize})`);
  need(equalBytes(sr, newRoot), `the proof does not lead to the new root (sizes ${oldSize} -> ${newSize})`);
}

// -- C2SP signed notes and checkpoints ---------------------------------------------------------

const SIG_PREFIX = "\u2014 "; // EM DASH, SPACE
const CONTROL = /[\x00-\x09\x0b-\x1f]/;

function validKeyName(name) {
  return name.length > 0 && !name.includes("+") && !/\s/u.test(name) && !CONTROL.test(name);
}

function bigEndian32(bytes) {
  return ((bytes[0] << 24) >>> 0) + (bytes[1] << 16) + (bytes[2] << 8) + bytes[3];
}

/**
 * Parse a C2SP note verifier key `<name>+<8 hex key id>+<base64(0x01 || 32-byte key)>` and
 * check that the key id is SHA-256(name || "\n" || 0x01 || key)[:4]. Returns
 * {name, keyId, publicKey, cryptoKey, text}.
 */
export async function parseVerifierKey(vkey) {
  need(typeof vkey === "string" && vkey.length > 0, "no log key is pinned (the log-key attribute is empty)");
  const text = vkey.trim();
  const first = text.indexOf("+");
  const second = text.indexOf("+", first + 1);
  need(first > 0 && second > first,
    `the log key ${text.slice(0, 60)} is not a verifier key (name+keyid+base64 key): get it from GET /v1/log/key`);
  const name = text.slice(0, first);
  const idHex = text.slice(first + 1, second);
  need(validKeyName(name), `the log key name ${JSON.stringify(name)} is invalid`);
  need(/^[0-9a-fA-F]{8}$/.test(idHex), `the log key id ${JSON.stringify(idHex)} is not 8 hex digits`);
  const raw = base64ToBytes(text.slice(second + 1));
  need(raw.length === 33 && raw[0] === 1, "the log key is not an Ed25519 key (0x01 followed by 32 bytes)");
  const publicKey = raw.slice(1);
  const digest = await sha256(concat(encoder.encode(name + "\n"), Uint8Array.of(1), publicKey));
  const keyId = bigEndian32(digest);
  need(keyId === parseInt(idHex, 16),
    `the log key declares key id ${idHex} but its name and public key give ${keyId.toString(16).padStart(8, "0")}`);
  let cryptoKey;
  try {
    cryptoKey = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (err) {
    throw new VerificationError(`this browser cannot check Ed25519 signatures (${err.message})`);
  }
  return { name, keyId, publicKey, cryptoKey, text };
}

/** Split a signed note into its text (with the final newline) and signature lines. */
export function splitNote(note) {
  need(typeof note === "string" && !CONTROL.test(note), "the checkpoint is not a signed note (control characters)");
  const cut = note.lastIndexOf("\n\n");
  need(cut >= 0, "the checkpoint has no blank line before its signatures");
  const text = note.slice(0, cut + 1);
  const block = note.slice(cut + 2);
  need(block.length > 0 && block.endsWith("\n"), "the checkpoint's signature block is empty or not newline-terminated");
  const signatures = block.slice(0, -1).split("\n").map((line, i) => {
    need(line.startsWith(SIG_PREFIX), `signature line ${i + 1} does not start with an em dash and a space`);
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(" ");
    need(space > 0, `signature line ${i + 1} has no signature`);
    const name = rest.slice(0, space);
    const blob = base64ToBytes(rest.slice(space + 1));
    need(blob.length >= 5, `signature line ${i + 1} is too short`);
    return { name, keyId: bigEndian32(blob), signature: blob.slice(4) };
  });
  return { text, signatures };
}

/** Parse a C2SP tlog-checkpoint body: origin, size, base64 root hash, extension lines. */
export function parseCheckpoint(text) {
  need(text.endsWith("\n"), "the checkpoint text does not end with a newline");
  const lines = text.slice(0, -1).split("\n");
  need(lines.length >= 3, `the checkpoint has ${lines.length} lines, expected origin, size and root hash`);
  const [origin, sizeText, rootText, ...extensions] = lines;
  need(origin.length > 0, "the checkpoint origin is empty");
  need(/^(0|[1-9][0-9]*)$/.test(sizeText), `the checkpoint size ${JSON.stringify(sizeText)} is not a number`);
  const size = Number(sizeText);
  need(Number.isSafeInteger(size), `the checkpoint size ${sizeText} is too large for this checker`);
  const root = base64ToBytes(rootText);
  need(root.length === 32, `the checkpoint root hash is ${root.length} bytes, expected 32`);
  return { origin, size, root, extensions };
}

/**
 * Open a signed checkpoint note with the pinned key (a result of parseVerifierKey): the
 * note must carry a valid signature by that key (same name and key id). Returns the parsed
 * checkpoint. With `origin`, the checkpoint must be of that log.
 */
export async function verifyCheckpoint(note, key, origin) {
  const { text, signatures } = splitNote(note);
  const mine = signatures.filter((s) => s.name === key.name && s.keyId === key.keyId);
  const idHex = key.keyId.toString(16).padStart(8, "0");
  need(mine.length > 0,
    `the checkpoint is not signed by the pinned log key ${key.name}+${idHex} (signed by ` +
    signatures.map((s) => `${s.name}+${s.keyId.toString(16).padStart(8, "0")}`).join(", ") + ")");
  for (const s of mine) {
    const ok = await subtle.verify({ name: "Ed25519" }, key.cryptoKey, s.signature, encoder.encode(text));
    need(ok, `the checkpoint signature by ${key.name}+${idHex} is invalid`);
  }
  const checkpoint = parseCheckpoint(text);
  if (origin !== undefined && origin !== null && origin !== "") {
    need(checkpoint.origin === origin, `the checkpoint is of log ${checkpoint.origin}, not ${origin}`);
  } else {
    need(checkpoint.origin.startsWith(key.name + "/"),
      `the checkpoint is of log ${checkpoint.origin}, which the key ${key.name} does not name`);
  }
  return checkpoint;
}

/**
 * Check one event as served by the API: recompute its leaf hash from its content (RFC 8785,
 * SHA-256), check the inclusion proof (GET /v1/log/proof/inclusion) leads from that leaf to
 * the root of the checkpoint it carries, and that the checkpoint is signed by the pinned key.
 * `openCheckpoint(note)` may cache verifyCheckpoint. Returns {checkpoint, leafIndex, redacted}.
 *
 * An event served through a viewer token that hides fields lists them in `redacted`: its
 * content no longer hashes to its leaf hash, so only the inclusion of the served `hash` is
 * checked (`redacted: true` in the result); the content is not verified.
 */
export async function verifyEvent(event, proof, key, openCheckpoint) {
  need(proof && typeof proof === "object", "no inclusion proof was received");
  need(typeof proof.checkpoint === "string", "the inclusion proof carries no signed checkpoint");
  const open = openCheckpoint || ((note) => verifyCheckpoint(note, key));
  const checkpoint = await open(proof.checkpoint);
  need(checkpoint.size === proof.tree_size,
    `the proof is for tree size ${proof.tree_size} but the checkpoint signs size ${checkpoint.size}`);
  need(proof.id === event.id, `the proof is for event ${proof.id}, not ${event.id}`);
  const redacted = Array.isArray(event.redacted) && event.redacted.length > 0;
  if (redacted) {
    need(/^[0-9a-f]{64}$/.test(String(event.hash)), "the redacted event carries no leaf hash");
    need(proof.leaf_hash === event.hash,
      `the proof is for leaf ${String(proof.leaf_hash).slice(0, 16)}…, not the event's hash`);
    const leaf = hexToBytes(event.hash);
    await verifyInclusion(leaf, proof.leaf_index, proof.tree_size, proof.hashes.map(hexToBytes), checkpoint.root);
    return { checkpoint, leafIndex: proof.leaf_index, redacted: true };
  }
  const leaf = await eventLeafHash(event);
  const leafHex = bytesToHex(leaf);
  need(leafHex === String(event.hash).toLowerCase(),
    `the event's content does not match its hash: recomputed ${leafHex.slice(0, 16)}…, ` +
    `recorded ${String(event.hash).slice(0, 16)}… (the stored event was changed)`);
  await verifyInclusion(leaf, proof.leaf_index, proof.tree_size, proof.hashes.map(hexToBytes), checkpoint.root);
  return { checkpoint, leafIndex: proof.leaf_index, redacted: false };
}
