"""Which folders of a repository are models and which are pipelines, and their versions."""

from __future__ import annotations

from pathlib import Path

from server.contract.pipelines import PIPELINE_FILE

__all__ = [
    "PUBLISHING",
    "model_folders",
    "pipeline_folders",
    "relative_to_repository",
    "version_folders",
]

# present while `shopserve export` moves a family's folders in: a polling server skips that scan,
# so it sees a new query encoder and the item embeddings made for it in the same scan
PUBLISHING = ".publishing"


def _folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def model_folders(root: Path) -> list[str]:
    """Every visible folder that is not a pipeline: a model, or a broken one to report."""
    return [p.name for p in _folders(root) if not (p / PIPELINE_FILE).exists()]


def pipeline_folders(root: Path) -> list[str]:
    return [p.name for p in _folders(root) if (p / PIPELINE_FILE).is_file()]


def version_folders(folder: Path) -> list[int]:
    """The numeric version folders, ascending."""
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def relative_to_repository(root: Path, text: str) -> str:
    """`text` (an error message) with the repository's absolute path taken out: clients and
    logs name files as `model/1/model.onnx`, never where the repository lives."""
    for prefix in {str(root.resolve()), str(root)}:
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    return text
