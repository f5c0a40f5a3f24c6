"""The verifiable log as a service, above the store.

:mod:`auditkeep.integrity` is the pure part (RFC 9162 arithmetic, note and checkpoint
formats: no I/O); this package is what uses it with keys, files, the network and a store:

* :mod:`~auditkeep.translog.keys`: :class:`KeyRing`, the checkpoint signing keys of a data
  directory (private keys in ``keys/``, public halves and their history in the store).
* :mod:`~auditkeep.translog.signing`: :class:`TransparencyLog` (signed checkpoints,
  inclusion and consistency proofs, the frontier) and :class:`Checkpointer` (the thread that
  signs on an interval).
* :mod:`~auditkeep.translog.verify`: checks a whole stored log (or a feed read over HTTP)
  against its events, its stored tree and every signed checkpoint.
* :mod:`~auditkeep.translog.bundle`: export bundles, a range of events checkable offline.
* :mod:`~auditkeep.translog.witness`: the witness that polls a log's checkpoints and proves
  each extends the last one it accepted.

Imports go down only: this package imports :mod:`auditkeep.store` and
:mod:`auditkeep.integrity`; the API, the CLI and the core import it (docs/architecture.md).
"""

from auditkeep.translog.bundle import (
    FORMAT,
    BundleError,
    BundleReport,
    BundleSource,
    export_bundle,
    verify_bundle,
)
from auditkeep.translog.keys import KEYS_DIR, KeyRing, check_key_name, key_id_hex
from auditkeep.translog.signing import Checkpointer, TransparencyLog, checkpoint_json, split_note
from auditkeep.translog.verify import (
    StoredLogInput,
    VerifyReport,
    default_jobs,
    is_canonical,
    stored_log_input,
    verify_feed,
    verify_store_log,
)
from auditkeep.translog.witness import Witness

__all__ = [
    "FORMAT",
    "KEYS_DIR",
    "BundleError",
    "BundleReport",
    "BundleSource",
    "Checkpointer",
    "KeyRing",
    "StoredLogInput",
    "TransparencyLog",
    "VerifyReport",
    "Witness",
    "check_key_name",
    "checkpoint_json",
    "default_jobs",
    "export_bundle",
    "is_canonical",
    "key_id_hex",
    "split_note",
    "stored_log_input",
    "verify_bundle",
    "verify_feed",
    "verify_store_log",
]
