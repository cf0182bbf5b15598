"""Make a dataset ready under ``<data_root>/<name>``: generate, locate, download, verify (MANIFEST)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segbench import __version__
from segbench.data import integrity
from segbench.data import registry as _registry
from segbench.data.registry import (
    dataset_dir,
    dataset_entry,
    dataset_paths,
    layout_files,
    resolve_layout,
)
from segbench.errors import InputError
from segbench.io import waiting_lock
from segbench.paths import child_path, relative_child

if TYPE_CHECKING:
    from segbench.data.download import Fetched

MANIFEST = "MANIFEST.json"
STALE_TMP_S = 3600.0  # leftovers of interrupted generations older than this are removed
log = logging.getLogger(__name__)


def prepare(
    name: str,
    data_root: str | os.PathLike[str],
    *,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    verify: bool = False,
    entry: dict[str, Any] | None = None,
) -> Path:
    """Generate, locate or download dataset ``name`` under ``data_root``; return its directory.

    Idempotent: a complete dataset that matches its MANIFEST (same generator, params and seed for
    synthetic data; every file's size and mtime, or its sha256 where they differ or with ``verify``) is
    left as it is unless ``force``. A changed file makes a synthetic dataset regenerate and a real one
    refused (:class:`InputError` naming the file). ``entry`` (default: the registry's) is the dataset as a
    run's config gives it, e.g. a sweep's synthetic params.
    """
    entry = entry or dataset_entry(name)
    with dataset_lock(name, Path(data_root)):  # concurrent jobs that need the same dataset: one prepares it
        if entry["source"] == "synthetic":
            return _prepare_synthetic(name, entry, Path(data_root), seed=seed, force=force, verify=verify)
        if entry["source"] == "derived":
            return _prepare_derived(name, entry, Path(data_root), force=force, verify=verify)
        return _prepare_real(name, entry, Path(data_root), force=force, progress=progress, verify=verify)


def dataset_lock(name: str, data_root: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive ``flock`` on ``<data_root>/.<name>.lock`` while a dataset is prepared: a second
    process waits, then finds it up to date. The kernel releases it when the holder dies (kill -9)."""
    return waiting_lock(data_root, name)


def dataset_identity(
    name: str,
    data_root: str | os.PathLike[str],
    *,
    verify: bool = False,
    entry: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """``{"name", "sha256", "files"}`` of a prepared dataset after checking it against its MANIFEST (see
    :mod:`segbench.data.integrity`): a synthetic dataset that changed on disk, or that was generated with
    another generator or other params than ``entry`` (default: the registry's) gives, is regenerated
    first (by :func:`prepare`, under the dataset's lock, with one warning line); a changed real one is
    refused. ``None`` where the dataset has no MANIFEST (not prepared by segbench)."""
    entry = entry or dataset_entry(name)
    root = dataset_dir(name, data_root)
    manifest = read_manifest(root)
    if manifest is None:
        return None
    if entry["source"] in ("synthetic", "derived"):  # prepare() checks it (and a derived one's source)
        prepare(
            name, data_root, seed=int(manifest.get("seed", 0)), progress=False, verify=verify, entry=entry
        )
        manifest = read_manifest(root) or {"files": {}}
    else:
        result = integrity.check(root, manifest, full=verify)
        if not result.ok:
            raise InputError(
                f"dataset {name!r}: {result.changed} {result.reason}; restore the file or run "
                f"`segbench data prepare {name} --force` to re-download"
            )
    identity = run_identity(name, manifest, entry)
    if entry["source"] == "derived":  # the data it was derived from: the real stack's hash reaches the runs
        identity["derived_from"] = manifest.get("derived_from")
    return identity


def run_identity(name: str, manifest: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """``{"name", "sha256", "files"}``: the hash of the files runs read, i.e. the MANIFEST's files less the
    format's ``outside_identity`` ones (ISBI 2012's test stack, read only by a submission); the MANIFEST's
    own hash where there are none of those (so every existing record keeps its value)."""
    from segbench.data.formats import dataset_format

    outside = set(dataset_format(entry["format"]).outside_identity)
    files = {rel: record for rel, record in manifest["files"].items() if rel not in outside}
    sha = integrity.manifest_sha256(manifest) if len(files) == len(manifest["files"]) else None
    return {
        "name": name,
        "sha256": sha or integrity.dataset_sha256(files),
        "files": len(files),
    }


def verify(name: str, data_root: str | os.PathLike[str]) -> dict[str, Any]:
    """Re-hash every file listed in the dataset's MANIFEST; a missing or changed file is an
    :class:`InputError`. Returns the manifest."""
    root = dataset_dir(name, data_root)
    manifest = read_manifest(root)
    if manifest is None:
        raise InputError(f"dataset {name!r}: no {MANIFEST} in {root}; run `segbench data prepare {name}`")
    from segbench.data.download import sha256_file

    for rel, record in manifest["files"].items():
        path = relative_child(root, rel, what="MANIFEST entry", source=root / MANIFEST)
        if not path.is_file():
            raise InputError(
                f"dataset {name!r}: {path} is missing; run `segbench data prepare {name} --force`"
            )
        if sha256_file(path) != record["sha256"]:
            raise InputError(
                f"dataset {name!r}: {path} does not match the sha256 in {root / MANIFEST}; "
                f"run `segbench data prepare {name} --force` (or restore the file)"
            )
    return manifest


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The MANIFEST of a dataset directory, or ``None`` where absent or unreadable."""
    import json

    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def build_manifest(root: Path, **fields: Any) -> dict[str, Any]:
    """A manifest of every file under ``root`` (except the manifest and downloads in progress), with each
    file's sha256, size and mtime and the dataset's hash (:mod:`segbench.data.integrity`)."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if (
            rel == MANIFEST
            or rel.endswith(".part")
            or any(part.startswith(".") for part in path.relative_to(root).parts)
        ):
            continue
        files[rel] = integrity.file_record(path)
    return {
        **fields,
        "segbench_version": __version__,
        "files": files,
        "dataset_sha256": integrity.dataset_sha256(files),
    }


# ---------------------------------------------------------------------------------------------------
# Synthetic
# ---------------------------------------------------------------------------------------------------
def up_to_date(
    name: str, target: Path, identity: dict[str, Any], *, verify: bool, changed: str, other: str
) -> bool:
    """Whether a generated or derived dataset in ``target`` is the one ``identity`` (its MANIFEST's keys)
    names and unchanged on disk; otherwise one warning line (``changed``: a file differs; ``other``: made
    from other params or data) and False, so the caller makes it again."""
    from segbench.errors import warn

    current = read_manifest(target)
    if current is None:
        return False
    if any(current.get(k) != v for k, v in identity.items()):
        warn(f"dataset {name!r}: {target} {other}")
        return False
    result = integrity.check(target, current, full=verify)
    if not result.ok:
        warn(f"dataset {name!r}: {result.changed} {result.reason}; {changed}")
        return False
    log.info("%s: up to date in %s", name, target)
    return True


def _prepare_synthetic(
    name: str, entry: dict[str, Any], data_root: Path, *, seed: int, force: bool, verify: bool = False
) -> Path:
    from segbench.data.synthetic import GENERATORS

    target = dataset_dir(name, data_root)
    params = entry.get("params", {})
    identity = {"dataset": name, "generator": entry["generator"], "params": params, "seed": int(seed)}
    # other params than asked for (an edited registry entry, a sweep's override): so must the data
    if not force and up_to_date(
        name,
        target,
        identity,
        verify=verify,
        changed="regenerating the synthetic dataset",
        other="was generated with other params than asked for now; regenerating it",
    ):
        return target
    generator = GENERATORS[entry["generator"]]
    return _write_dataset(
        name, entry, data_root, identity, lambda out: generator.generate(out, dict(params), int(seed))
    )


def _write_dataset(
    name: str, entry: dict[str, Any], data_root: Path, identity: dict[str, Any], write: Any
) -> Path:
    """Write a generated or derived dataset into a temporary folder (``write(folder)``), check its layout,
    record its MANIFEST (``identity`` + every file's hash), then swap it into place."""
    from segbench.io import write_json_atomic

    target = dataset_dir(name, data_root)
    data_root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(data_root, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=data_root))
    try:
        start = time.perf_counter()
        with _name_failed_writes(target, tmp):
            write(tmp)
            manifest = build_manifest(tmp, **identity)
        missing = [str(p) for p in layout_files(resolve_layout(entry, tmp)) if not p.exists()]
        if missing:
            raise InputError(
                f"dataset {name!r}: generator {entry['generator']!r} did not write {missing[0]}; "
                "fix the layout in datasets.yaml or the generator"
            )
        with _name_failed_writes(target, tmp):
            write_json_atomic(tmp / MANIFEST, manifest)
            _swap_into_place(tmp, target)
        log.info("%s: generated in %.1f s -> %s", name, time.perf_counter() - start, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------------
# Derived (from another registry dataset: segbench.data.derived)
# ---------------------------------------------------------------------------------------------------
def _prepare_derived(name: str, entry: dict[str, Any], data_root: Path, *, force: bool, verify: bool) -> Path:
    """Prepare the source dataset, then derive ``name`` from it unless its MANIFEST records the same
    derivation, params and source hash and its files are unchanged (a changed source derives again)."""
    from segbench.data.derived import DERIVATIONS

    source = entry["derive_from"]
    prepare(source, data_root, progress=False, verify=verify)
    source_identity = dataset_identity(source, data_root, verify=verify)
    if source_identity is None:  # a real dataset on a read-only data root: no MANIFEST, hash its files
        files = {
            path.name: integrity.file_record(path) for path in layout_files(dataset_paths(source, data_root))
        }
        source_identity = {"name": source, "sha256": integrity.dataset_sha256(files), "files": len(files)}
    identity = {
        "dataset": name,
        "generator": entry["generator"],
        "params": entry.get("params", {}),
        "derived_from": {k: source_identity[k] for k in ("name", "sha256")},
    }
    target = dataset_dir(name, data_root)
    if not force and up_to_date(
        name,
        target,
        identity,
        verify=verify,
        changed=f"deriving it again from {source!r}",
        other="was derived from other data or params than now; deriving it again",
    ):
        return target
    derivation = DERIVATIONS[entry["generator"]]
    paths = dataset_paths(source, data_root)
    return _write_dataset(
        name,
        entry,
        data_root,
        identity,
        lambda out: derivation.derive(paths, out, dict(entry.get("params", {}))),
    )


@contextlib.contextmanager
def _name_failed_writes(target: Path, tmp: Path) -> Iterator[None]:
    """A write that fails while a dataset is generated (a full disk) names the file it was writing, as the
    path it would have had in ``target``; the half-generated ``tmp`` is removed by the caller."""
    try:
        yield
    except OSError as exc:
        where = str(target)
        if exc.filename:
            with contextlib.suppress(ValueError):
                where = str(target / Path(exc.filename).relative_to(tmp))
        raise OSError(exc.errno, exc.strerror or str(exc), where) from exc


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` onto ``target``; an old ``target`` is moved aside first, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale_tmp(data_root: Path, name: str) -> None:
    now = time.time()
    for leftover in data_root.glob(f".{name}.*"):
        if leftover.is_dir() and now - leftover.stat().st_mtime > STALE_TMP_S:
            shutil.rmtree(leftover, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# Real
# ---------------------------------------------------------------------------------------------------
ARCHIVES = (
    "ARCHIVES.json"  # beside the data: each archive's size, checksums and what they were checked against
)
PUBLISHED = "published"  # the registry's checksum (the publisher's or the community's), checked at download
TOFU = "trust on first use"  # no published checksum: the first download's sha256, checked on later downloads


def _prepare_real(
    name: str, entry: dict[str, Any], data_root: Path, *, force: bool, progress: bool, verify: bool = False
) -> Path:
    from segbench.data.download import check_free_space, extract_zip, fetch, human_bytes
    from segbench.io import write_json_atomic

    root = dataset_dir(name, data_root)
    manifest = read_manifest(root)
    present = _all_present(name, data_root)
    records = read_archive_records(root)
    if present and not force:
        if manifest is not None:
            result = integrity.check(root, manifest, full=verify)
            if not result.ok:
                raise InputError(
                    f"dataset {name!r}: {result.changed} {result.reason}; restore the file or run "
                    f"`segbench data prepare {name} --force` to re-download"
                )
            return root
        _check_published_checksums(name, entry, root)
        _write_real_manifest(name, entry, root, archives=records)
        return root
    if manifest is not None:  # no longer ready until every archive is verified and extracted again
        (root / MANIFEST).unlink()
    pending = [
        item
        for item in entry["downloads"]
        if item.get("url") is not None and (force or not _already_extracted(root, records.get(item["file"])))
    ]
    needed, archive_bytes, extracted_bytes = 0, 0, 0
    for item in pending:
        archive = _archive_path(root, item)
        have = max(
            (p.stat().st_size for p in (archive, archive.with_name(archive.name + ".part")) if p.is_file()),
            default=0,
        )
        size = item.get("size_bytes")
        if size is not None:
            archive_bytes += max(int(size) - have, 0)
        if item.get("extract"):
            extracted_bytes += int(item.get("extracted_bytes") or size or 0)
    needed = archive_bytes + extracted_bytes
    if needed:
        check_free_space(
            root,
            needed,
            what=f"dataset {name!r}",
            detail=f"archives {human_bytes(archive_bytes)} + extracted {human_bytes(extracted_bytes)}, "
            "sizes from datasets.yaml",
        )
    for item in pending:
        file, archive = item["file"], _archive_path(root, item)
        recorded = (
            records.get(file, {}).get("sha256") if not (item.get("sha256") or item.get("md5")) else None
        )
        if item.get("md5") or item.get("sha256"):
            expected_from = "published, datasets.yaml"
        else:
            expected_from = (
                f"recorded at the first download in {root / ARCHIVES}; delete that entry if the publisher "
                "changed the file"
            )
        fix = f"rerun `segbench data download {name}` to resume"
        got = fetch(
            item["url"],
            archive,
            sha256=item.get("sha256") or recorded,
            md5=item.get("md5"),
            progress=progress,
            fix=fix,
            expected_from=expected_from,
        )
        if not (item.get("sha256") or item.get("md5") or recorded):
            _check_first_use(got, item["url"], name)
        record = {
            "url": item["url"],
            "bytes": got.bytes,
            "sha256": got.sha256,
            "recorded_utc": records.get(file, {}).get("recorded_utc") or _utc_now(),
        }
        if item.get("md5"):
            record.update(md5=got.md5, checked_against=f"{PUBLISHED} md5 (datasets.yaml)", trust=PUBLISHED)
        elif item.get("sha256"):
            record.update(checked_against=f"{PUBLISHED} sha256 (datasets.yaml)", trust=PUBLISHED)
        elif recorded:
            record.update(checked_against="sha256 recorded at the first download", trust=TOFU)
        else:
            record.update(checked_against="nothing: first download, sha256 recorded now", trust=TOFU)
        records[file] = record
        write_json_atomic(root / ARCHIVES, records)  # before extraction: a retry is checked too
        if item.get("extract"):
            moved = extract_zip(archive, root)
            record["extracted"] = sorted(p.name for p in moved)
            archive.unlink()  # its checksums stay in ARCHIVES.json and the MANIFEST; the tree is what is used
            write_json_atomic(root / ARCHIVES, records)
    dataset_paths(name, data_root)  # the layout must now be complete
    _check_published_checksums(name, entry, root)
    _write_real_manifest(name, entry, root, archives=records)  # last: its presence marks the dataset ready
    return root


def _check_first_use(got: Fetched, url: str, name: str) -> None:
    """Trust on first use only for a complete transfer: the file is exactly as long as the server said.
    Anything else (no ``Content-Length``, a size that differs) is removed and refused in one line."""
    if got.complete:
        return
    got.path.unlink(missing_ok=True)
    said = "announced no size" if got.server_bytes is None else f"announced {got.server_bytes} bytes"
    raise InputError(
        f"{got.path.name}: got {got.bytes} bytes from {url}, the server {said}, so the download is not "
        f"known to be complete and its sha256 is not trusted on first use (the copy was removed); add the "
        f"publisher's sha256 for it to datasets.yaml, then rerun `segbench data download {name}`"
    )


def _archive_path(root: Path, item: dict[str, Any]) -> Path:
    return root / "downloads" / item["file"] if item.get("extract") else root / item["file"]


def _already_extracted(root: Path, record: dict[str, Any] | None) -> bool:
    """An archive verified and extracted by an earlier, interrupted prepare (its entries are all present)."""
    return bool(record and record.get("extracted") and all((root / n).exists() for n in record["extracted"]))


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_archive_records(root: Path) -> dict[str, Any]:
    """``<dataset>/ARCHIVES.json``: per downloaded archive its URL, size, sha256 (md5 where published) and
    what it was checked against; empty where absent."""
    import json

    try:
        records = json.loads((root / ARCHIVES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def describe_checksums(name: str, data_root: str | os.PathLike[str]) -> list[str]:
    """One line per file of a real dataset: which checksum it was checked against, and whether that
    checksum is published (registry) or was recorded on first use."""
    entry = dataset_entry(name)
    if entry["source"] != "real":
        return [f"  {name}: synthetic; every file's sha256 is in {MANIFEST} (regenerated, not downloaded)"]
    root = dataset_dir(name, data_root)
    records = read_archive_records(root)
    lines = []
    for item in entry["downloads"]:
        file, record = item["file"], records.get(item["file"])
        if item.get("md5"):
            published = f"md5 {item['md5']} published (datasets.yaml)"
        elif item.get("sha256"):
            published = f"sha256 {item['sha256']} published (datasets.yaml)"
        else:
            published = None
        if record is None:
            where = "placed by hand" if item.get("url") is None else "not downloaded by segbench"
            how = published or f"no published checksum; its files' sha256 recorded in {MANIFEST} ({TOFU})"
            lines.append(f"  {file}: {where}; {how}")
        elif published:
            lines.append(
                f"  {file}: {published}, matched at download ({record.get('recorded_utc', '?')}); "
                f"sha256 {record['sha256']} recorded"
            )
        else:
            lines.append(
                f"  {file}: no published checksum; sha256 {record['sha256']} recorded at the first download "
                f"({record.get('recorded_utc', '?')}, {TOFU}), later downloads must match it"
            )
    return lines


def _check_published_checksums(name: str, entry: dict[str, Any], root: Path) -> None:
    """Files placed by hand (not archives) must match the publisher's checksum where the registry has one."""
    from segbench.data.download import hash_file

    for item in entry["downloads"]:
        path = child_path(root, item["file"], what="download file", source=_registry.DATASETS_YAML)
        if item.get("extract") or not path.is_file():
            continue
        for algo in ("sha256", "md5"):
            known = item.get(algo)
            if known and (actual := hash_file(path, (algo,))[algo]) != known:
                raise InputError(
                    f"dataset {name!r}: {path}: checksum mismatch: expected {algo} {known} "
                    f"(published, datasets.yaml), got {algo} {actual}; replace it with the original file"
                )


def _all_present(name: str, data_root: Path) -> bool:
    try:
        dataset_paths(name, data_root)
    except InputError:
        return False
    return True


def _write_real_manifest(name: str, entry: dict[str, Any], root: Path, *, archives: dict[str, Any]) -> None:
    """Record the files of a real dataset (and its archives' sha256); skipped on a read-only data root."""
    from segbench.io import write_json_atomic

    manifest = build_manifest(
        root,
        dataset=name,
        source="real",
        archives=archives,
        downloads=[d.get("url") for d in entry["downloads"]],
    )
    manifest["files"] = {
        rel: rec
        for rel, rec in manifest["files"].items()
        if not rel.startswith("downloads/") and rel != ARCHIVES
    }
    manifest["dataset_sha256"] = integrity.dataset_sha256(manifest["files"])
    try:
        write_json_atomic(root / MANIFEST, manifest)
    except OSError as exc:
        log.warning(
            "%s: cannot write %s (%s); the data root is read-only, checksums not recorded",
            name,
            root / MANIFEST,
            exc,
        )
