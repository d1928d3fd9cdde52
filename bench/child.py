"""Entry point of a measuring child process: ``python -m bench.child module:function JSON``.

Runs ``bench.<module>.<function>(**JSON)`` and prints its result as one marked JSON line.
"""

from __future__ import annotations

import json
import sys
from importlib import import_module

from bench.common import RESULT_MARK


def main(argv: list[str]) -> int:
    task, arguments = argv[1], json.loads(argv[2]) if len(argv) > 2 else {}
    module, function = task.split(":")
    result = getattr(import_module(f"bench.{module}"), function)(**arguments)
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
