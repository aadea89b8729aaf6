"""Entry point Pulumi runs for `--policy-pack policy`: serves the pack's policies to the engine.

Pulumi starts it as `python policy/` (the pack's directory), which puts only this directory on `sys.path`. The
pack's modules import one another as the `policy` package, as the tests do, so its parent goes on the path first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack

from policy.pack import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=POLICIES)
