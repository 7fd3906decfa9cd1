"""The old module path of ``promptrec-train`` (``python -m promptrec.train``, torchrun, srun).

Kept so that launch scripts written before the package was layered keep working; new scripts use
``python -m promptrec.cli.train``.
"""

from __future__ import annotations

import sys

from promptrec.cli.train import main

if __name__ == "__main__":
    print("note: `python -m promptrec.train` is now `python -m promptrec.cli.train`; the old "
          "path keeps working.", file=sys.stderr)  # fmt: skip
    main()
