"""sha256 of pyproject.toml's dependency lists (runtime and extras): the lock files record it, and
scripts/setup.sh compares it to tell a stale lock from a current one."""

import hashlib
import json
import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml").read_text())["project"]
deps = {"dependencies": project.get("dependencies", []), "extras": project.get("optional-dependencies", {})}
print(hashlib.sha256(json.dumps(deps, sort_keys=True).encode()).hexdigest())
