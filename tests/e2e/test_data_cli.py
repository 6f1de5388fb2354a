"""`loopml data` and `loopml gc` run as a user runs them: processes in a workspace folder."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.core.blobs import ContentStore, LocalStorage
from loopml.core.blobs.digest import DIGEST_PREFIX, digest_bytes, digest_file
from loopml.core.blobs.local import TEMP_PREFIX
from loopml.core.workspace import Workspace
from loopml.data import versions
from tests.e2e.cli import environment, loopml, loopml_json, one_error_line, python, together

# --- looking at files and blobs -------------------------------------------------------------


def tree(folder: Path) -> dict[str, bytes]:
    """Return every file under `folder` by its POSIX path relative to it, with its bytes."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def blob_files(blobs: Path) -> dict[str, Path]:
    """Return the blob files under a blob folder by the digest their name claims.

    Temp files a killed writer left are skipped; anything else that is not a blob fails.
    """
    found: dict[str, Path] = {}
    for shard in sorted(blobs.iterdir()) if blobs.is_dir() else []:
        if shard.name.startswith(TEMP_PREFIX):
            continue
        assert shard.is_dir() and len(shard.name) == 2, f"stray entry {shard}"
        for path in shard.iterdir():
            if path.name.startswith(TEMP_PREFIX):
                continue
            assert len(path.name) == 62, f"stray entry {path}"
            found[DIGEST_PREFIX + shard.name + path.name] = path
    return found


def verified_blobs(blobs: Path) -> dict[str, Path]:
    """Return the blob files under `blobs`, after checking each hashes to its name."""
    found = blob_files(blobs)
    wrong = {d: digest_file(p) for d, p in found.items() if digest_file(p) != d}
    assert not wrong, f"blobs stored under a wrong digest: {wrong}"
    return found


def blobs_of(root: Path) -> Path:
    """Return the blob folder of the workspace at `root`."""
    return root / ".loopml" / "blobs"


# --- the data a user versions ---------------------------------------------------------------


def churn_v1() -> pd.DataFrame:
    """Return 500 customers: id, age, spend, plan."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_id": np.arange(500),
            "age": rng.integers(18, 90, 500),
            "spend": rng.normal(50, 10, 500).round(2),
            "plan": rng.choice(["basic", "pro", "team"], 500),
        }
    )


def churn_v2() -> pd.DataFrame:
    """Return v1 with 100 more customers, spend up by 20 and a new `tenure` column."""
    rng = np.random.default_rng(1)
    more = churn_v1().iloc[:100].assign(customer_id=np.arange(500, 600))
    frame = pd.concat([churn_v1(), more], ignore_index=True)
    return frame.assign(spend=frame["spend"] + 20, tenure=rng.integers(0, 60, 600))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """Return the CSV a user would write with pandas."""
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().encode()


def image_files() -> dict[str, bytes]:
    """Return 30 small binary files in label/split subfolders, by relative path."""
    rng = np.random.default_rng(7)
    return {
        f"{label}/{split}/{i:03d}.bin": rng.bytes(int(rng.integers(500, 4000)))
        for label in ("bird", "cat", "dog")
        for split in ("test", "train")
        for i in range(5)
    }


def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    """Create `folder` holding exactly `files`."""
    for relpath, data in files.items():
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_bytes(data)


# --- workspaces -----------------------------------------------------------------------------

CHURN_V1, CHURN_V2, IMAGES = csv_bytes(churn_v1()), csv_bytes(churn_v2()), image_files()


@dataclass(frozen=True)
class Seeded:
    """A workspace holding churn@v1, churn@v2 (churn.csv) and images@v1 (images/)."""

    root: Path
    added: list[str]  # what each `data add` printed: churn v1, images v1, churn v2


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """Build the workspace once, through the CLI."""
    root = tmp_path_factory.mktemp("seeded")
    loopml("init", cwd=root)
    (root / "churn.csv").write_bytes(CHURN_V1)
    write_tree(root / "images", IMAGES)
    churn, images = together(
        lambda: loopml("data", "add", "churn.csv", "--name", "churn", cwd=root).stdout,
        lambda: loopml("data", "add", "images", cwd=root).stdout,
    )
    (root / "churn.csv").write_bytes(CHURN_V2)
    churn2 = loopml("data", "add", "churn.csv", "-n", "churn", "-m", "spend +20", cwd=root)
    return Seeded(root, [churn, images, churn2.stdout])


@pytest.fixture
def workspace(seeded: Seeded, tmp_path: Path) -> Path:
    """A private copy of the seeded workspace, for a test that changes it."""
    root = tmp_path / "project"
    shutil.copytree(seeded.root, root, symlinks=True)
    return root


# --- the journey ----------------------------------------------------------------------------


def test_added_datasets_are_listed_logged_and_shown(seeded: Seeded) -> None:
    root = seeded.root
    assert seeded.added[0].strip() == f"Added churn@v1: 1 file(s), {len(CHURN_V1) / 1000:.1f} KB"
    assert seeded.added[1].startswith("Added images@v1: 30 file(s)")
    assert seeded.added[2].startswith("Added churn@v2: 1 file(s)")

    listed, listed_json, log, shown, images = together(
        lambda: loopml("data", "list", cwd=root).stdout,
        lambda: loopml_json("data", "list", cwd=root),
        lambda: loopml("data", "log", "churn", cwd=root).stdout,
        lambda: loopml("data", "show", "churn@v1", cwd=root).stdout,
        lambda: loopml_json("data", "show", "images", cwd=root),
    )

    churn_row = next(line for line in listed.splitlines() if "churn" in line)
    assert "v2" in churn_row and "churn.csv" in churn_row
    images_row = next(line for line in listed.splitlines() if "images" in line)
    assert "v1" in images_row and "30" in images_row
    assert {d["name"]: (d["version"], d["versions"], d["files"]) for d in listed_json} == {
        "churn": (2, 2, 1),
        "images": (1, 1, 30),
    }

    assert log.index("churn@v2") < log.index("churn@v1")  # newest first
    assert "spend +20" in log
    assert {d["name"]: d["size"] for d in listed_json}["churn"] == len(CHURN_V2)

    assert "churn@v1  (file, 1 file(s)" in shown
    assert "churn.csv: 500 rows" in shown
    for column in ("customer_id", "age", "spend", "plan"):
        assert column in shown

    assert images["ref"] == "images@v1" and images["files"] == 30
    assert sorted(f["path"] for f in images["file_list"]) == sorted(IMAGES)
    assert images["size"] == sum(len(b) for b in IMAGES.values())
    assert images["profiles"] == {}


def test_unchanged_content_makes_no_version_and_one_edit_stores_one_blob(workspace: Path) -> None:
    before = blob_files(blobs_of(workspace))

    again = loopml("data", "add", "images", cwd=workspace)
    assert again.stdout.strip() == "Unchanged: images is still images@v1"
    assert blob_files(blobs_of(workspace)) == before

    (workspace / "images" / "cat" / "train" / "002.bin").write_bytes(b"a new cat")
    changed = loopml_json("data", "add", "images", cwd=workspace)
    assert (changed["ref"], changed["created"], changed["files"]) == ("images@v2", True, 30)

    new_blobs = set(blob_files(blobs_of(workspace))) - set(before)
    assert new_blobs == {digest_bytes(b"a new cat"), changed["manifest"]}  # 1 file + 1 manifest
    assert digest_bytes(IMAGES["cat/train/002.bin"]) in before  # v1 keeps its file
    verified_blobs(blobs_of(workspace))


def test_status_names_each_edited_added_and_deleted_file(workspace: Path) -> None:
    clean = loopml("data", "status", cwd=workspace).stdout
    assert "churn.csv: up to date (churn@v2)" in clean
    assert "images: up to date (images@v1)" in clean

    images = workspace / "images"
    (images / "dog" / "test" / "001.bin").write_bytes(b"edited")
    (images / "dog" / "extra.bin").write_bytes(b"new file")
    (images / "bird" / "train" / "004.bin").unlink()
    text, body = together(
        lambda: loopml("data", "status", cwd=workspace).stdout,
        lambda: loopml_json("data", "status", cwd=workspace),
    )

    assert "images: changed since images@v1" in text
    assert "modified: dog/test/001.bin" in text
    assert "new:      dog/extra.bin" in text
    assert "deleted:  bird/train/004.bin" in text
    assert "churn.csv: up to date (churn@v2)" in text
    by_path = {entry["path"]: entry for entry in body}
    assert by_path["churn.csv"]["clean"] is True
    assert by_path["images"] | {"clean": False} == {
        "path": "images",
        "ref": "images@v1",
        "clean": False,
        "missing": False,
        "added": ["dog/extra.bin"],
        "removed": ["bird/train/004.bin"],
        "changed": ["dog/test/001.bin"],
    }


def test_checkout_restores_versions_and_never_overwrites_local_edits(workspace: Path) -> None:
    images = workspace / "images"
    shutil.rmtree(images)
    assert "images: missing since images@v1" in loopml("data", "status", cwd=workspace).stdout
    restored = loopml("data", "checkout", "images", cwd=workspace)
    assert "Checked out images@v1" in restored.stdout
    assert tree(images) == IMAGES

    churn = workspace / "churn.csv"
    edited = CHURN_V2 + b"600,40,1.0,pro,3\n"
    churn.write_bytes(edited)
    refused = loopml("data", "checkout", "churn@v1", cwd=workspace, expect=1)
    line = one_error_line(refused)
    assert "churn.csv" in line and "--force" in line
    assert churn.read_bytes() == edited

    loopml("data", "checkout", "churn@v1", "--force", cwd=workspace)
    assert churn.read_bytes() == CHURN_V1

    loopml("data", "checkout", "churn@v2", "--to", "other/", cwd=workspace)
    assert (workspace / "other" / "churn.csv").read_bytes() == CHURN_V2
    assert churn.read_bytes() == CHURN_V1


def test_diff_shows_rows_new_columns_and_shifted_stats(seeded: Seeded) -> None:
    body, text = together(
        lambda: loopml_json("data", "diff", "churn@v1", "churn@v2", cwd=seeded.root),
        lambda: loopml("data", "diff", "churn@v1", "churn@v2", cwd=seeded.root).stdout,
    )

    assert body["files"] == {"added": [], "removed": [], "changed": ["churn.csv"]}
    table = body["tables"]["churn.csv"]
    assert table["rows"] == {"old": 500, "new": 600}
    assert table["added"] == ["tenure"] and table["removed"] == []
    spend = table["changed"]["spend"]["mean"]
    assert 45 < spend["old"] < 55 and spend["new"] == pytest.approx(spend["old"] + 20, abs=1)

    assert "churn@v1 -> churn@v2: 0 added, 0 removed, 1 changed" in text
    assert "rows 500 -> 600" in text
    assert "tenure" in text  # the new column
    spend_row = next(line for line in text.splitlines() if "spend" in line and "mean" in line)
    assert f"{spend['old']:.6g}" in spend_row and f"{spend['new']:.6g}" in spend_row


HOSTILE = "<script>alert(1)</script>"


def signup(seed: int) -> pd.DataFrame:
    """Return 400 signups whose second column is named like an XSS attack."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, 400),
            HOSTILE: rng.normal(50, 10, 400),
            "plan": rng.choice(["basic", "pro"], 400),
        }
    )


def test_validate_catches_a_dropped_column_and_passes_a_resample(
    workspace: Path, tmp_path: Path
) -> None:
    versions = [signup(0), signup(1), signup(2).drop(columns=["plan"])]
    for i, frame in enumerate(versions, start=1):
        (tmp_path / f"signup{i}.csv").write_bytes(csv_bytes(frame))
    python(  # setup only: three versions of one file, through the Python API
        f"""
        import shutil, loopml
        loopml.set_workspace(".")
        for i in (1, 2, 3):
            shutil.copy({str(tmp_path)!r} + f"/signup{{i}}.csv", "signup.csv")
            assert loopml.data.add("signup.csv", "signup").version == i
        """,
        cwd=workspace,
    )
    report = tmp_path / "report" / "out.html"

    validate = ("data", "validate", "--against", "signup@v1")
    resample, dropped = together(
        lambda: loopml(*validate, "signup@v2", "--html", str(report), cwd=workspace),
        lambda: loopml(*validate, "signup@v3", cwd=workspace, expect=1),
    )

    assert resample.stdout.rstrip().endswith("PASSED")
    assert "'plan'" in dropped.stdout and "missing" in dropped.stdout
    assert dropped.stdout.rstrip().endswith("FAILED")
    page = report.read_text("utf-8")
    assert "age" in page and "plan" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page


def test_an_exported_schema_validates_its_own_version(seeded: Seeded, tmp_path: Path) -> None:
    root = seeded.root
    schema = tmp_path / "schema.json"
    schema.write_text(loopml("data", "schema", "churn@v1", cwd=root).stdout, "utf-8")
    assert set(json.loads(schema.read_text("utf-8"))["columns"]) == {
        "customer_id",
        "age",
        "spend",
        "plan",
    }
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"columns": {"age": {"type": "integer"}', "utf-8")
    misspelled = tmp_path / "misspelled.json"
    misspelled.write_text('{"columns": {"age": {"type": "integr"}}}', "utf-8")

    same, shifted, bad_json, bad_type = together(
        lambda: loopml("data", "validate", "churn@v1", "--schema", str(schema), cwd=root),
        lambda: loopml_json(
            "data", "validate", "churn@v2", "--schema", str(schema), cwd=root, expect=1
        ),
        lambda: loopml(
            "data", "validate", "churn@v1", "--schema", str(malformed), cwd=root, expect=1
        ),
        lambda: loopml(
            "data", "validate", "churn@v1", "--schema", str(misspelled), cwd=root, expect=1
        ),
    )

    assert same.stdout.rstrip().endswith("PASSED")
    assert shifted["ok"] is False  # spend moved above the range v1 had
    issues = shifted["tables"]["churn.csv"]["issues"]
    assert any(i["column"] == "spend" and i["severity"] == "error" for i in issues), issues
    line = one_error_line(bad_json)
    assert str(malformed) in line and "not valid JSON" in line
    line = one_error_line(bad_type)
    assert str(misspelled) in line and "'integr'" in line


def test_tags_name_versions_and_reserved_names_are_refused(workspace: Path) -> None:
    tagged = loopml("data", "tag", "churn@v1", "prod", cwd=workspace)
    assert tagged.stdout.strip() == "churn@prod -> churn@v1"

    shown, as_version, as_latest, unknown = together(
        lambda: loopml_json("data", "show", "churn@prod", cwd=workspace),
        lambda: loopml("data", "tag", "churn@v1", "v3", cwd=workspace, expect=1),
        lambda: loopml("data", "tag", "churn@v1", "latest", cwd=workspace, expect=1),
        lambda: loopml("data", "show", "churn@staging", cwd=workspace, expect=1),
    )

    assert shown["ref"] == "churn@v1" and shown["tags"] == ["prod"]
    assert "'v3' is reserved" in one_error_line(as_version)
    assert "'latest' is reserved" in one_error_line(as_latest)
    line = one_error_line(unknown)
    assert "'staging'" in line and "prod" in line  # names the tags there are


def test_used_by_lists_the_runs_that_read_a_version(workspace: Path) -> None:
    run_id = python(
        """
        import loopml
        loopml.set_workspace(".")
        with loopml.start_run(run_name="trainer") as run:
            run.log_input("churn@v1")
        print(run.id)
        """,
        cwd=workspace,
    ).stdout.strip()

    body, unused, shown = together(
        lambda: loopml_json("data", "used-by", "churn@v1", cwd=workspace),
        lambda: loopml("data", "used-by", "churn@v2", cwd=workspace).stdout,
        lambda: loopml_json("runs", "show", run_id, cwd=workspace),
    )

    assert [(r["run_id"], r["name"], r["status"]) for r in body] == [
        (run_id, "trainer", "FINISHED")
    ]
    assert unused.strip() == "No run has read churn@v2."
    assert shown["inputs"] == ["churn@v1"]  # lineage walks back from the run too


def test_push_and_pull_move_every_blob_through_a_file_remote(
    workspace: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    added = loopml(
        "data", "remote", "add", "origin", f"file://{remote}", "--default", cwd=workspace
    )
    assert added.stdout.strip() == f"Remote origin -> file://{remote} (default)"
    local = verified_blobs(blobs_of(workspace))

    pushed = loopml("data", "push", cwd=workspace)
    assert pushed.stdout.startswith(f"Pushed {len(local)} blob(s)")
    assert set(verified_blobs(remote)) == set(local)
    again = loopml("data", "push", cwd=workspace)
    assert again.stdout.startswith("Pushed 0 blob(s)")
    assert f"{len(local)} already there" in again.stdout

    shutil.rmtree(blobs_of(workspace))  # blobs are read-only files; their folders are not
    blobs_of(workspace).mkdir()
    shutil.rmtree(workspace / "images")
    pulled = loopml("data", "pull", cwd=workspace)
    assert pulled.stdout.startswith(f"Pulled {len(local)} blob(s)")
    assert set(verified_blobs(blobs_of(workspace))) == set(local)

    loopml("data", "checkout", "images", cwd=workspace)
    assert tree(workspace / "images") == IMAGES


def test_gc_removes_only_what_nothing_references(workspace: Path, tmp_path: Path) -> None:
    (workspace / "images" / "bird" / "test" / "003.bin").write_bytes(b"v2 bird")
    loopml("data", "add", "images", cwd=workspace)
    dry = loopml("gc", cwd=workspace)
    assert dry.stdout.startswith("0 unreferenced blob(s)")

    store = ContentStore(LocalStorage(blobs_of(workspace)))
    orphan = store.put_bytes(b"bytes nothing points at")
    before = blob_files(blobs_of(workspace))
    dry = loopml("gc", cwd=workspace)
    assert dry.stdout.startswith("1 unreferenced blob(s), 23 B; nothing removed (dry run)")
    assert blob_files(blobs_of(workspace)) == before

    removed = loopml("gc", "--force", cwd=workspace)
    assert removed.stdout.startswith("Removed 1 unreferenced blob(s), 23 B")
    assert set(before) - set(blob_files(blobs_of(workspace))) == {orphan.digest}

    out = tmp_path / "out"
    python(  # every version of every dataset, as a user's script would fetch them
        f"""
        import os, loopml
        loopml.set_workspace(".")
        for dataset in loopml.data.list_datasets():
            for version in loopml.data.log(dataset.name):
                os.makedirs({str(out)!r} + "/" + version.ref)
                loopml.data.checkout(version.ref, {str(out)!r} + "/" + version.ref)
        """,
        cwd=workspace,
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "churn@v1",
        "churn@v2",
        "images@v1",
        "images@v2",
    ]
    assert tree(out / "images@v1") == IMAGES
    v2 = tree(out / "images@v2")
    assert v2.pop("bird/test/003.bin") == b"v2 bird"
    assert v2.items() <= IMAGES.items() and len(v2) == 29
    assert (out / "churn@v1" / "churn.csv").read_bytes() == CHURN_V1
    assert (out / "churn@v2" / "churn.csv").read_bytes() == CHURN_V2


# --- bad inputs -----------------------------------------------------------------------------


def test_bad_inputs_get_one_line_naming_the_problem(workspace: Path) -> None:
    (workspace / "empty").mkdir()
    (workspace / "looped" / "sub").mkdir(parents=True)
    (workspace / "looped" / "sub" / "data.txt").write_text("x")
    (workspace / "looped" / "sub" / "up").symlink_to("..")
    (workspace / "dangling").mkdir()
    (workspace / "dangling" / "ok.txt").write_text("x")
    (workspace / "dangling" / "gone.txt").symlink_to(workspace / "nowhere.txt")
    (workspace / "quote.csv").write_text('a,b\n1,"never closed\n2,3\n')
    locked = workspace / "locked"
    locked.mkdir()
    (locked / "secret.bin").write_bytes(b"secret")
    (locked / "secret.bin").chmod(0o000)
    (workspace / "churn.csv").unlink()  # a folder where churn@v1, a file, would go
    (workspace / "churn.csv").mkdir()
    (workspace / "churn.csv" / "keep.txt").write_text("mine")

    def fails(*args: str) -> Callable[[], str]:
        return lambda: one_error_line(loopml(*args, cwd=workspace, expect=1))

    (
        missing,
        empty,
        unknown_dataset,
        unknown_version,
        unknown_tag,
        bad_name,
        loop,
        broken,
        quote,
        no_remote,
        no_reference,
        onto_folder,
    ) = together(
        fails("data", "add", "no-such-file.csv", "--name", "x"),
        fails("data", "add", "empty"),
        fails("data", "log", "nope"),
        fails("data", "show", "churn@v9"),
        fails("data", "checkout", "churn@gold"),
        fails("data", "add", "quote.csv", "--name", "bad name"),
        fails("data", "add", "looped"),
        fails("data", "add", "dangling"),
        fails("data", "add", "quote.csv"),
        fails("data", "push"),
        fails("data", "validate", "churn@v1"),
        fails("data", "checkout", "churn@v1", "--force"),
    )

    assert "no-such-file.csv does not exist" in missing
    assert "empty holds no files" in empty
    assert "no dataset 'nope'" in unknown_dataset and "churn, images" in unknown_dataset
    assert "no version 'v9'" in unknown_version and "v1..v2" in unknown_version
    assert "no tag 'gold'" in unknown_tag
    assert "'bad name' is not valid" in bad_name
    assert "looped/sub/up" in loop and "symlink loop" in loop
    assert "dangling/gone.txt" in broken and "broken symlink" in broken
    assert "quote.csv" in quote and "not valid CSV" in quote
    assert "no remote is configured" in no_remote and "loopml data remote add" in no_remote
    assert "--against" in no_reference and "--schema" in no_reference
    assert "churn.csv is a folder" in onto_folder
    assert (workspace / "churn.csv" / "keep.txt").read_text() == "mine"
    stored = versions.list_all(Workspace.open(workspace))
    assert {s.name for s in stored} == {"churn", "images"}  # no failed add registered anything

    if os.geteuid() == 0:  # root reads a mode-000 file, so the add goes through
        assert "Added locked@v1" in loopml("data", "add", "locked", cwd=workspace).stdout
    else:
        assert "secret.bin" in fails("data", "add", "locked")()


def test_a_csv_with_ragged_rows_is_refused_in_one_line(workspace: Path) -> None:
    (workspace / "ragged.csv").write_text("a,b\n1,2\n3,4,5,6\n")

    done = loopml("data", "add", "ragged.csv", cwd=workspace, expect=1)

    line = one_error_line(done)
    assert "ragged.csv" in line and "not valid CSV" in line


def test_outside_a_workspace_data_commands_say_to_run_loopml_init(tmp_path: Path) -> None:
    status, listing = together(
        lambda: loopml("data", "status", cwd=tmp_path, expect=1),
        lambda: loopml("data", "list", cwd=tmp_path, expect=1),
    )

    for done in (status, listing):
        line = one_error_line(done)
        assert "`loopml init`" in line and str(tmp_path) in line
        assert done.stdout == ""


@pytest.mark.postgres
def test_the_journey_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    from loopml.testing.stores import truncate_all

    truncate_all(postgres_url)
    env = environment(LOOPML_STORE_URI=postgres_url)
    root = tmp_path / "pg"
    root.mkdir()
    assert "postgresql" in loopml("init", cwd=root, env=env).stdout
    write_tree(root / "images", IMAGES)
    assert "images@v1" in loopml("data", "add", "images", cwd=root, env=env).stdout
    (root / "images" / "dog" / "train" / "000.bin").write_bytes(b"v2 dog")
    assert "images@v2" in loopml("data", "add", "images", cwd=root, env=env).stdout
    loopml("data", "tag", "images@v1", "prod", cwd=root, env=env)
    assert loopml_json("data", "show", "images@prod", cwd=root, env=env)["ref"] == "images@v1"

    shutil.rmtree(root / "images")
    loopml("data", "checkout", "images@prod", cwd=root, env=env)
    assert tree(root / "images") == IMAGES
    assert "up to date (images@v1)" in loopml("data", "status", cwd=root, env=env).stdout
