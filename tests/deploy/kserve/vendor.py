"""Re-vendor the KServe CRD schemas these tests validate against (run by hand, not by the tests):

    python tests/deploy/kserve/vendor.py /path/to/kserve.git v0.20.0

Takes each CRD's `openAPIV3Schema` from `config/crd/full/` at that ref, as KServe's controller-gen
wrote it, and writes it as JSON beside this file; then update README.md's release and commit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CRDS = {
    "serving.kserve.io_clusterservingruntimes.yaml": ("v1alpha1", "clusterservingruntime"),
    "serving.kserve.io_inferenceservices.yaml": ("v1beta1", "inferenceservice"),
}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    repo, ref = argv
    commit = subprocess.run(
        ["git", "-C", repo, "rev-parse", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for crd_file, (version, stem) in CRDS.items():
        text = subprocess.run(
            ["git", "-C", repo, "show", f"{commit}:config/crd/full/{crd_file}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        crd = yaml.safe_load(text)
        (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
        schema = entry["schema"]["openAPIV3Schema"]
        out = HERE / f"{stem}.{version}.json"
        out.write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")
        print(f"{out.name}: {crd['spec']['group']}/{version} {crd['spec']['names']['kind']}")
    print(f"{ref} = {commit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
