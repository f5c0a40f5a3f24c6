"""Storage-agnostic integrity primitives for auditkeep.

* :mod:`auditkeep.integrity.merkle`: the RFC 9162 Merkle tree over the event log, stored as
  perfect subtrees addressed by ``(level, index)``, with inclusion/consistency proofs and
  their verifiers.
* :mod:`auditkeep.integrity.checkpoint`: C2SP signed checkpoints (Ed25519 signed notes)
  that commit the log to a tree size and root hash.

The byte-level formats are specified in ``docs/verification.md``.
"""

from auditkeep.integrity.checkpoint import (
    ALG_ED25519,
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointError,
    InvalidSignatureError,
    KeyFormatError,
    MalformedNoteError,
    NoKnownSignatureError,
    NoteError,
    Signer,
    Verifier,
    compute_key_id,
    generate_signer,
    open_note,
    parse_signer,
    parse_verifier,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
)
from auditkeep.integrity.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    MemoryNodeStore,
    Node,
    NodeId,
    NodeReader,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    parse_hash_hex,
    root_from_leaves,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "ALG_ED25519",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointError",
    "CompactRange",
    "InvalidSignatureError",
    "KeyFormatError",
    "MalformedNoteError",
    "MemoryNodeStore",
    "NoKnownSignatureError",
    "Node",
    "NodeId",
    "NodeReader",
    "NoteError",
    "ProofError",
    "Signer",
    "Verifier",
    "compute_key_id",
    "consistency_proof",
    "generate_signer",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "open_note",
    "parse_hash_hex",
    "parse_signer",
    "parse_verifier",
    "root_from_leaves",
    "root_hash",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
