"""tlog.js, run in Chromium, against vectors made by the server's own code: RFC 8785 for
hypothesis-generated values and events, RFC 9162 inclusion and consistency proofs for many
tree sizes (good and broken), C2SP checkpoints signed by auditkeep's signer. Each group runs
as one batch in one page."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from playwright.sync_api import Browser, Page

from auditkeep.integrity.checkpoint import Checkpoint, Signer, sign_checkpoint
from auditkeep.integrity.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from auditkeep.model import now_micros, prepare_event
from auditkeep_client.schema import EventValidationError, canonical_json
from tests.conftest import LiveServer, start_live_server
from tests.schema.test_canonical import events as event_strategy
from tests.schema.test_canonical import json_values


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_live_server(tmp_path_factory.mktemp("tlogjs"), checkpoint_interval="0")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def page(browser: Browser, server: LiveServer) -> Iterator[Page]:
    """A page of the server's origin (a secure context: loopback) with tlog.js imported as
    window.tlog. The page has no CSP of its own; test_timeline covers CSP."""
    context = browser.new_context()
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.goto(server.url + "/static/timeline.css")
    p.evaluate("async () => { window.tlog = await import('/static/tlog.js'); }")
    yield p
    assert errors == []
    context.close()


def run(page: Page, body: str, arg: Any) -> Any:
    """Evaluate ``async (arg) => { body }`` with ``tlog`` in scope."""
    return page.evaluate(f"async (arg) => {{ const tlog = window.tlog; {body} }}", arg)


# -- RFC 8785 ----------------------------------------------------------------------------------


def _collect(strategy: Any, n: int) -> list[Any]:
    out: list[Any] = []

    @given(strategy)
    @settings(max_examples=n, database=None, suppress_health_check=list(HealthCheck))
    def gather(value: Any) -> None:
        out.append(value)

    gather()
    return out


def _utf8_ok(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not JSON text a server accepts
        return False
    return True


CANONICALIZE = """
  return arg.map((text) => tlog.canonicalize(JSON.parse(text)));
"""


def test_jcs_matches_the_server_for_generated_values(page: Page) -> None:
    values = [v for v in _collect(json_values, 400) if _utf8_ok(v)]
    assert len(values) > 300
    # shuffled key order and whitespace, so the browser has real work to do
    texts = [json.dumps(v, indent=1, ensure_ascii=False) for v in values]
    got = run(page, CANONICALIZE, texts)
    expected = [canonical_json(v).decode("utf-8") for v in values]
    mismatches = [(t, g, e) for t, g, e in zip(texts, got, expected, strict=True) if g != e]
    assert mismatches == []


def test_jcs_tricky_values(page: Page) -> None:
    values: list[Any] = [
        {"\ufb33": 1, "😀": 2, "a": 3, "\u20ac": 4, "\r": 5, "1": 6, "": 7},  # UTF-16 order
        [1e-7, 1e21, 1e20, 0.1, -0.0, 4.5, 2.0, 333333333.33333329, 1e-6, 9007199254740991],
        ["\u0000\u0008\t\n\u000c\r\u001f\u007f", '"\\/', "\u2028\u2029", "é😀"],
        {"nested": {"b": [{"z": None, "y": True}], "a": {"": False}}},
        {"__proto__": 1, "constructor": 2},
    ]
    texts = [json.dumps(v, ensure_ascii=False) for v in values]
    got = run(page, CANONICALIZE, texts)
    assert got == [canonical_json(v).decode("utf-8") for v in values]


def test_leaf_hash_of_generated_events_matches_the_server(page: Page) -> None:
    leaves = []
    for raw in _collect(event_strategy, 200):
        try:
            leaves.append(prepare_event(raw, "acme-ünïcode", now_micros()).leaf_data)
        except EventValidationError:
            continue  # surrogates in generated text
    assert len(leaves) > 100
    # as the API serves it: the normal form plus seq and hash, keys in any order
    served = []
    for i, data in enumerate(leaves):
        event = json.loads(data)
        event.update(seq=i + 1, hash=hashlib.sha256(b"\x00" + data).hexdigest())
        served.append(json.dumps(dict(reversed(list(event.items()))), ensure_ascii=False))
    got = run(
        page,
        "const out = []; for (const t of arg) out.push(tlog.bytesToHex("
        "await tlog.eventLeafHash(JSON.parse(t)))); return out;",
        served,
    )
    assert got == [hashlib.sha256(b"\x00" + d).hexdigest() for d in leaves]


def test_docs_worked_example(page: Page) -> None:
    leaf = (
        '{"action":"user.login","actor":{"id":"u1","type":"user"},"category":"audit",'
        '"context":{},"id":"evt-1","metadata":{"a":"café","b":1},'
        '"occurred_at":"2026-11-23T18:20:19.500000Z","outcome":"success",'
        '"received_at":"2026-11-23T18:20:20.000123Z","targets":[],"tenant":"acme"}'
    )
    got = run(page, "return tlog.bytesToHex(await tlog.eventLeafHash(JSON.parse(arg)));", leaf)
    assert got == "da346de6f3be5b42b5df23f7eeed4ef3a987688c1b674c397354b5fbcf6e58b0"


# -- RFC 9162 proofs -------------------------------------------------------------------------

LEAVES = [leaf_hash(f"leaf {i}".encode()) for i in range(70)]
STORE, _ = MemoryNodeStore.from_leaf_hashes(LEAVES)
SIZES = [*range(1, 18), 31, 32, 33, 63, 64, 65, 70]

INCLUSION = """
  const hex = tlog.hexToBytes;
  const out = [];
  for (const v of arg) {
    try {
      await tlog.verifyInclusion(hex(v.leaf), v.index, v.size, v.proof.map(hex), hex(v.root));
      out.push("ok");
    } catch (e) {
      out.push(e.name === "VerificationError" ? "bad" : "crash: " + e);
    }
  }
  return out;
"""


def _python_says(check: Any) -> str:
    try:
        check()
    except ProofError:
        return "bad"
    return "ok"


def _broken(proof: list[bytes], rng: random.Random) -> list[list[bytes]]:
    out = [[*proof, LEAVES[0]]]  # one hash too many
    if proof:
        out.append(proof[:-1])  # one too few
        flipped = list(proof)
        i = rng.randrange(len(proof))
        flipped[i] = bytes([flipped[i][0] ^ 1]) + flipped[i][1:]
        out.append(flipped)
    return out


def test_inclusion_proofs_for_many_tree_sizes(page: Page) -> None:
    rng = random.Random(9162)
    vectors = []
    for size in SIZES:
        root = root_hash(size, STORE)
        for index in range(size):
            proof = inclusion_proof(index, size, STORE)
            cases = [(LEAVES[index], index, proof, root)]
            cases += [(LEAVES[index], index, p, root) for p in _broken(proof, rng)]
            cases.append((LEAVES[(index + 1) % 70], index, proof, root))  # another leaf
            cases.append((LEAVES[index], index, proof, bytes(32)))  # another root
            if size > 1:
                cases.append((LEAVES[index], (index + 1) % size, proof, root))  # wrong index
            for leaf, i, p, r in cases:
                vectors.append(
                    {
                        "leaf": leaf.hex(),
                        "index": i,
                        "size": size,
                        "proof": [h.hex() for h in p],
                        "root": r.hex(),
                        "want": _python_says(
                            lambda leaf=leaf, i=i, p=p, r=r, size=size: verify_inclusion(
                                leaf, i, size, p, r
                            )
                        ),
                    }
                )
    got = run(page, INCLUSION, vectors)
    wanted = [v["want"] for v in vectors]
    assert wanted.count("ok") == sum(SIZES)  # exactly the genuine proofs
    assert got == wanted


CONSISTENCY = """
  const hex = tlog.hexToBytes;
  const out = [];
  for (const v of arg) {
    try {
      await tlog.verifyConsistency(v.old, v.new, hex(v.oldRoot), hex(v.newRoot), v.proof.map(hex));
      out.push("ok");
    } catch (e) {
      out.push(e.name === "VerificationError" ? "bad" : "crash: " + e);
    }
  }
  return out;
"""


def test_consistency_proofs_between_many_tree_sizes(page: Page) -> None:
    rng = random.Random(2114)
    pairs = [(a, b) for a in range(0, 18) for b in range(max(a, 1), 18)]
    pairs += [(17, 70), (32, 64), (33, 70), (64, 65), (1, 70), (63, 64), (70, 70)]
    vectors = []
    genuine = 0
    for old, new in pairs:
        old_root = root_hash(old, STORE) if old else EMPTY_ROOT
        new_root = root_hash(new, STORE)
        proof = consistency_proof(old, new, STORE)
        cases = [(proof, old_root, new_root)]
        genuine += 1
        cases += [(p, old_root, new_root) for p in _broken(proof, rng)]
        if old != new:
            cases.append((proof, new_root, old_root))  # roots swapped
        for p, o_root, n_root in cases:
            vectors.append(
                {
                    "old": old,
                    "new": new,
                    "oldRoot": o_root.hex(),
                    "newRoot": n_root.hex(),
                    "proof": [h.hex() for h in p],
                    "want": _python_says(
                        lambda p=p, o_root=o_root, n_root=n_root, old=old, new=new: (
                            verify_consistency(old, new, o_root, n_root, p)
                        )
                    ),
                }
            )
    got = run(page, CONSISTENCY, vectors)
    wanted = [v["want"] for v in vectors]
    assert wanted.count("ok") == genuine
    assert got == wanted


# -- C2SP checkpoints --------------------------------------------------------------------------

OPEN_CHECKPOINT = """
  const out = [];
  for (const v of arg) {
    try {
      const key = await tlog.parseVerifierKey(v.vkey);
      const cp = await tlog.verifyCheckpoint(v.note, key, v.origin);
      out.push(`ok ${cp.origin} ${cp.size} ${tlog.bytesToHex(cp.root)}`);
    } catch (e) {
      out.push(e.name === "VerificationError" ? "bad: " + e.message : "crash: " + e);
    }
  }
  return out;
"""


def test_checkpoints_signed_by_the_server_code(page: Page) -> None:
    log = Signer("audit.example.com", bytes(range(32)))
    other = Signer("audit.example.com", bytes(range(1, 33)))
    witness = Signer("witness.example", bytes(range(2, 34)))
    root = root_hash(70, STORE)
    cp = Checkpoint("audit.example.com/acme", 70, root, ["timestamp 2026-11-23T18:20:20Z"])
    note = sign_checkpoint(cp, log).decode()
    rotated = sign_checkpoint(cp, [other, log]).decode()
    cosigned = sign_checkpoint(cp, [log, witness]).decode()
    forged = note.replace("\n70\n", "\n71\n", 1)
    vkey = log.verifier.vkey
    bad_id = vkey.split("+")[0] + "+00000000+" + vkey.split("+", 2)[2]
    cases = [
        {"vkey": vkey, "note": note},
        {"vkey": vkey, "note": rotated},
        {"vkey": other.verifier.vkey, "note": rotated},
        {"vkey": vkey, "note": cosigned, "origin": "audit.example.com/acme"},
        {"vkey": vkey, "note": forged},
        {"vkey": other.verifier.vkey, "note": note},
        {"vkey": witness.verifier.vkey, "note": cosigned},  # origin not named by the key
        {"vkey": vkey, "note": note, "origin": "audit.example.com/globex"},
        {"vkey": bad_id, "note": note},
        {"vkey": "not a key", "note": note},
        {"vkey": vkey, "note": note.replace("\n\n", "\n")},
    ]
    got = run(page, OPEN_CHECKPOINT, cases)
    ok = f"ok audit.example.com/acme 70 {root.hex()}"
    assert got[:4] == [ok] * 4
    assert got[4] == "bad: the checkpoint signature by audit.example.com+" + (
        f"{log.key_id:08x} is invalid"
    )
    assert got[5].startswith(
        f"bad: the checkpoint is not signed by the pinned log key audit.example.com+"
        f"{other.key_id:08x} (signed by audit.example.com+{log.key_id:08x})"
    )
    assert got[6].startswith("bad: the checkpoint is of log audit.example.com/acme, which the key")
    assert (
        got[7]
        == "bad: the checkpoint is of log audit.example.com/acme, not audit.example.com/globex"
    )
    assert got[8].startswith("bad: the log key declares key id 00000000 but its name and public")
    assert got[9].startswith("bad: the log key not a key is not a verifier key")
    assert got[10].startswith("bad: the checkpoint has no blank line")
