"""``python -m auditkeep.cli``: the same CLI as the ``auditkeep`` script."""

from auditkeep.cli import main

main()
