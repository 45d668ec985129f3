"""`tangshi data fetch` and `tangshi data prepare`.

fetch: put the 58 `poet.tang.*.json` files into `data/quantangshi/`, trying, in order,
  1. `--from PATH` (a folder, a clone of chinese-poetry, or a .tgz / .tar.gz),
  2. a GitHub download of the repository's 全唐诗 folder (when online),
  3. `npm pack chinese-poetry@2.0.1`, whose `dist/quantangshi/` holds the same files.
Every file is checked against the sha256 manifest shipped in the package.

prepare: clean → filter → sample → split, then write a prepared folder:
  train.txt, dev.txt (one poem a line), vocab.json, meta.json, and titles.json
  ({"train": [...], "dev": [...]}: each poem's cleaned title, line for line; "" where it has none).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from importlib import resources
from pathlib import Path

from tangshi.data import corpus
from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError, read_json, read_text
from tangshi.files import describe_oserror
from tangshi.outputs import OutputFolder, require_complete

DATA_DIR = Path("data")
RAW_DIR = DATA_DIR / "quantangshi"
NPM_PACKAGE = "chinese-poetry@2.0.1"
GITHUB_RAW = "https://raw.githubusercontent.com/chinese-poetry/chinese-poetry/master/全唐诗/{name}"
DOWNLOAD_TIMEOUT_S = 20
TITLES = "titles.json"


def manifest() -> dict[str, str]:
    """file name → sha256 of the 58 poem files (src/tangshi/data/manifest/quantangshi.json)."""
    text = resources.files("tangshi.data").joinpath("manifest/quantangshi.json").read_text(encoding="utf-8")
    return json.loads(text)["sha256"]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _find_poem_folder(root: Path) -> Path | None:
    """The folder under `root` that holds poet.tang.0.json (a clone, an npm package, or the folder itself)."""
    for cand in (
        root,
        root / "全唐诗",
        root / "quantangshi",
        root / "dist" / "quantangshi",
        root / "package" / "dist" / "quantangshi",
    ):
        if (cand / "poet.tang.0.json").exists():
            return cand
    hits = sorted(root.rglob("poet.tang.0.json"))
    return hits[0].parent if hits else None


def _verify_and_copy(folder: Path, dest: OutputFolder) -> int:
    """Check every manifest file in `folder`; copy them into `dest` (staged, then moved into
    place). Returns the count."""
    want = manifest()
    bad = []
    for name, digest in want.items():
        f = folder / name
        if not f.exists():
            bad.append(f"{name} missing")
        elif sha256(f) != digest:
            bad.append(f"{name} sha256 mismatch")
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise TangshiError("; ".join(bad[:3]) + more)
    names = list(want) + [extra for extra in ("authors.tang.json", "LICENSE") if (folder / extra).exists()]
    with dest.staged() as tmp:
        for name in names:
            try:
                shutil.copyfile(folder / name, tmp / name)
            except OSError as e:  # name what is being written, not the source it is read from
                raise TangshiError(describe_oserror(e, dest.path / name)) from None
    return len(want)


def _fetched_before(path: Path, entries: list[str]) -> bool:
    """A folder an older tangshi fetched (before outputs were marked): only the manifest's poem
    files (each with its checksum), `authors.tang.json` and `LICENSE`."""
    want = manifest()
    poem_files = [n for n in entries if n in want]
    if not poem_files or not set(entries) <= set(want) | {"authors.tang.json", "LICENSE"}:
        return False
    return all(sha256(path / n) == want[n] for n in poem_files)


def _from_path(src: Path, work: Path) -> Path:
    src = Path(src)
    if not src.exists():
        raise TangshiError(f"{src} does not exist")
    if src.is_file():
        if not tarfile.is_tarfile(src):
            raise TangshiError(f"{src} is neither a folder nor a .tgz archive")
        try:
            with tarfile.open(src) as tf:
                tf.extractall(work, filter="data")  # refuses members outside `work` and absolute links
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise TangshiError(f"{src} is not a readable .tgz archive ({e})") from None
        src = work
    folder = _find_poem_folder(src)
    if folder is None:
        raise TangshiError(f"no poet.tang.*.json files under {src}")
    return folder


def _from_github(work: Path) -> Path:
    for name in manifest():
        url = GITHUB_RAW.format(name=name)
        try:
            with urllib.request.urlopen(urllib.parse.quote(url, safe=":/"), timeout=DOWNLOAD_TIMEOUT_S) as r:
                (work / name).write_bytes(r.read())
        except (urllib.error.URLError, OSError) as e:
            raise TangshiError(f"download of {name} failed: {getattr(e, 'reason', e)}") from None
    return work


def _from_npm(work: Path) -> Path:
    if shutil.which("npm") is None:
        raise TangshiError("npm is not on PATH")
    proc = subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=work, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TangshiError(
            f"npm pack failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        )
    tgz = sorted(work.glob("*.tgz"))
    if not tgz:
        raise TangshiError("npm pack produced no tarball")
    return _from_path(tgz[0], work / "unpacked")


def fetch(
    dest: Path = RAW_DIR,
    from_path: Path | None = None,
    online: bool = True,
    use_npm: bool = True,
    log=print,
    replace: bool = False,
) -> dict:
    """Try each source in order; return {"source", "files", "dest"} or raise listing every failure.
    `dest` is opened under the output policy (outputs.py) before anything is downloaded."""
    with OutputFolder(
        dest, "poems", replace=replace, sources=[from_path], option="--dest", legacy=_fetched_before
    ) as out:
        return _fetch(out, from_path, online, use_npm, log)


def _fetch(out: OutputFolder, from_path: Path | None, online: bool, use_npm: bool, log) -> dict:
    dest = out.path
    sources = []
    if from_path is not None:
        sources.append((f"--from {from_path}", lambda w: _from_path(from_path, w)))
    if online:
        sources.append(("github", _from_github))
    if use_npm:
        sources.append((f"npm pack {NPM_PACKAGE}", _from_npm))
    failures = []
    for label, get in sources:
        with tempfile.TemporaryDirectory(prefix="tangshi-fetch-") as tmp:
            work = Path(tmp)
            try:
                folder = get(work)
                n = _verify_and_copy(folder, out)
            except (TangshiError, OSError) as e:
                why = describe_oserror(e) if isinstance(e, OSError) else e
                failures.append(f"{label}: {why}")
                log(f"source {label} failed: {why}")
                continue
        log(f"fetched {n} files from {label} into {dest}")
        return {"source": label, "files": n, "dest": str(dest)}
    raise TangshiError("could not fetch the poems; " + " | ".join(failures) if failures else "no source to fetch from")


def prepare(source: Path, out: Path, n_poems: int | None, seed: int, replace: bool = False) -> dict:
    """Clean, filter, sample and split; write the prepared folder; return the summary.
    `out` is opened under the output policy (outputs.py) before any work is done."""
    with OutputFolder(out, "prepared", replace=replace, sources=[source]) as folder:
        return _prepare(Path(source), folder, n_poems, seed)


def _prepare(source: Path, folder: OutputFolder, n_poems: int | None, seed: int) -> dict:
    t0 = time.perf_counter()
    out = folder.path
    poems, stats = corpus.load_poems(Path(source))
    train, dev = corpus.sample_and_split(poems, n_poems, seed)
    for name, split in (("train", train), ("dev", dev)):
        if not split:
            raise TangshiError(
                f"the {name} split would hold no poems ({len(poems)} poems of 10–63 characters "
                f"in {source}); nothing was written"
            )
    vocab = Vocab.build(train)
    oov = sum(1 for p in dev for ch in p if ch not in vocab)
    dev_chars = sum(len(p) for p in dev)
    summary = {
        "poems_read": stats.poems_read,
        "files": stats.files,
        "dropped": dict(sorted(stats.dropped.items())),
        "in_range": stats.in_range,
        "sample": n_poems if n_poems is not None else "all",
        "seed": seed,
        "train": len(train),
        "dev": len(dev),
        "vocab_size": len(vocab),
        "dev_oov_rate": oov / max(dev_chars, 1),
        "out": str(out),
    }
    with folder.staged() as tmp:
        (tmp / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
        (tmp / "dev.txt").write_text("\n".join(dev) + "\n", encoding="utf-8")
        titles = {name: [stats.titles.get(p, "") for p in split] for name, split in (("train", train), ("dev", dev))}
        (tmp / TITLES).write_text(json.dumps(titles, ensure_ascii=False), encoding="utf-8")
        vocab.save(tmp / "vocab.json")
        if Vocab.load(tmp / "vocab.json") != vocab:
            raise TangshiError("vocabulary did not load back identical")
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        (tmp / "meta.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    return summary


def default_prepared_name(n_poems: int | None, seed: int) -> str:
    return f"{'all' if n_poems is None else n_poems}-seed{seed}"


def require_prepared(data_dir: Path) -> Path:
    """The prepared folder, or a clear error saying how to make it."""
    data_dir = Path(data_dir)
    if data_dir.is_dir():  # a folder being replaced lacks some files: say so, not that it is missing
        require_complete(data_dir, "tangshi data prepare")
    if not (data_dir / "vocab.json").exists():
        raise TangshiError(f"prepared data folder not found: {data_dir} (run `tangshi data prepare`)")
    return data_dir


def read_split(data_dir: Path, split: str) -> list[str]:
    f = Path(data_dir) / f"{split}.txt"
    if not Path(data_dir).is_dir():
        raise TangshiError(f"prepared data folder not found: {data_dir} (run `tangshi data prepare`)")
    require_complete(Path(data_dir), "tangshi data prepare")
    if not f.exists():
        raise TangshiError(f"{f} is missing (run `tangshi data prepare`)")
    return [line.strip() for line in read_text(f).split("\n") if line.strip()]


def read_meta(data_dir: Path) -> dict:
    f = Path(data_dir) / "meta.json"
    if not f.exists():
        raise TangshiError(f"{f} is missing (run `tangshi data prepare`)")
    meta = read_json(f, "JSON")
    if not isinstance(meta, dict):
        raise TangshiError(f"{f} is not a prepared folder's meta (a JSON object)")
    return meta


def read_titles(data_dir: Path, split: str, n: int) -> list[str]:
    """The cleaned titles of a prepared split, line for line with its poems (`n` of them)."""
    f = Path(data_dir) / TITLES
    if not f.exists():
        raise TangshiError(
            f"{f} is missing: the folder was prepared before titles were kept (run `tangshi data prepare` again)"
        )
    obj = read_json(f, "JSON")
    titles = obj.get(split) if isinstance(obj, dict) else None
    if not isinstance(titles, list) or len(titles) != n or not all(isinstance(t, str) for t in titles):
        raise TangshiError(f"{f} does not hold one title for each of the {n} poems of {split}.txt")
    return titles
