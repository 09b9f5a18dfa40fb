"""The audit (artlab.audit, docs/audit.md) on a tiny collection with known faults, made from 16 demo paintings at
192 pixels: each finder finds what was injected (a finder that finds nothing fails), findings.csv has its columns,
a finding becomes a curation decision in one command, confident learning's scores follow the paper's definitions,
and near-copies across splits are recorded (``leakage``) or kept together (``--group-duplicates``)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from artlab.audit import finders
from artlab.collection import duplicates

SIDE = 192


def _small(src: Path, dst: Path) -> Image.Image:
    im = Image.open(src).convert("RGB")
    im.thumbnail((SIDE, SIDE))
    im.save(dst, quality=92)
    return im


def _jpeg(im: Image.Image, path: Path, quality: int = 92) -> None:
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=quality)
    path.write_bytes(buffer.getvalue())


@pytest.fixture(scope="module")
def faulty(demo_collection, tmp_path_factory):
    """(collection folder, truth): 8 portraits + 8 landscapes, one file copied as is, one resized and recompressed,
    one cropped, one colour-shifted; one portrait relabelled landscape; three textures with no genre."""
    out = tmp_path_factory.mktemp("faulty") / "collection"
    (out / "images").mkdir(parents=True)
    m = pd.read_csv(demo_collection / "manifest.csv", dtype=str, keep_default_na=False)
    rows = []
    for genre in ("portrait", "landscape"):
        for _, r in m[m["genre"] == genre].head(8).iterrows():
            path = f"images/{r['id']}.jpg"
            _small(demo_collection / r["path"], out / path)
            rows.append({**r.to_dict(), "path": path})
    base = pd.DataFrame(rows)
    portraits, landscapes = base[base["genre"] == "portrait"], base[base["genre"] == "landscape"]
    copies, pairs = [], set()

    def add_copy(src_row, how, image_bytes_or_none=None):
        pid = f"copy-{how}-{src_row['id']}"
        path = f"images/{pid}.jpg"
        im = Image.open(out / src_row["path"]).convert("RGB")
        if how == "same":
            shutil.copy(out / src_row["path"], out / path)
        elif how == "resized":
            _jpeg(im.resize((im.width * 2 // 3, im.height * 2 // 3)), out / path, quality=30)
        elif how == "crop":
            w, h = im.size
            _jpeg(im.crop((int(w * .1), int(h * .12), int(w * .88), int(h * .9))), out / path)
        else:
            _jpeg(ImageEnhance.Brightness(ImageEnhance.Color(im).enhance(1.5)).enhance(1.1), out / path)
        copies.append({**src_row.to_dict(), "id": pid, "path": path})
        pairs.add(tuple(sorted((src_row["id"], pid))))

    for (_, r), how in zip(pd.concat([portraits.iloc[:2], landscapes.iloc[:2]]).iterrows(),
                           ("same", "resized", "crop", "colour")):
        add_copy(r, how)
    wrong = portraits.iloc[5]["id"]
    base.loc[base["id"] == wrong, "genre"] = "landscape"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    textures = {"noise": rng.integers(0, 256, (SIDE, SIDE, 3)),
                "stripes": np.stack([(np.sin(xx * 50) > 0) * 255] * 3, -1),
                "gradient": np.stack([xx * 255, yy * 255, (1 - xx) * 255], -1)}
    odd = []
    for name, a in textures.items():
        pid = f"odd-{name}"
        Image.fromarray(a.astype(np.uint8)).save(out / f"images/{pid}.jpg", quality=92)
        odd.append({**{c: "" for c in m.columns}, "id": pid, "path": f"images/{pid}.jpg", "title": name,
                    "source": "test", "license": "test"})
    pd.concat([base, pd.DataFrame(copies), pd.DataFrame(odd)]).to_csv(out / "manifest.csv", index=False)
    (out / "report.json").write_text(json.dumps({"source": "test"}))
    return out, {"pairs": pairs, "wrong": wrong, "odd": {o["id"] for o in odd}}


@pytest.fixture(scope="module")
def audited(faulty, tmp_path_factory):
    from artlab.audit import audit_collection
    collection, _ = faulty
    return audit_collection(collection, "genre", cache=tmp_path_factory.mktemp("features"), top=None)


# --- each finder on injected faults ---------------------------------------------------------------------------------

def test_near_copies_found_and_grouped(faulty, audited):
    _, truth = faulty
    found = {tuple(sorted(p)) for p in zip(audited.pairs["a"], audited.pairs["b"])}
    assert truth["pairs"] <= found  # identical file, resized + recompressed, cropped, colour-shifted
    assert len(found - truth["pairs"]) <= 1
    how = dict(zip(zip(audited.pairs["a"], audited.pairs["b"]), audited.pairs["how"]))
    assert "identical file" in how.values() and "same painting, another scan or crop" in how.values()
    for a, b in truth["pairs"]:
        assert audited.groups[a] == audited.groups[b]


def test_not_a_painting_ranks_the_textures_first(faulty, audited):
    _, truth = faulty
    ranked = audited.odd.sort_values("score", ascending=False)["id"].tolist()
    assert len(set(ranked[:2 * len(truth["odd"])]) & truth["odd"]) >= len(truth["odd"]) - 1
    row = audited.findings[audited.findings["kind"] == "not-a-painting"].iloc[0]
    assert row["related"] and row["rank"] == 1  # the reason: what it looks like, an ImageNet class name


def test_label_finder_puts_the_relabelled_painting_near_the_top(faulty, audited):
    _, truth = faulty
    ranked = audited.labels.sort_values("score", ascending=False)
    assert truth["wrong"] in ranked["id"].head(3).tolist()
    assert ranked.set_index("id").loc[truth["wrong"], "suggested"] == "portrait"


# --- confident learning's definitions (Northcutt, Jiang, Chuang 2021) -----------------------------------------------

def test_confident_learning_scores_follow_the_paper():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.55, 0.4, 0.05]])
    labels = np.array([0, 1, 1, 2, 0])
    assert np.allclose(finders.self_confidence(probs, labels), [0.9, 0.7, 0.3, 0.7, 0.55])
    # margin of the given label over the likeliest other class, mapped from [-1, 1] to [0, 1]
    assert np.allclose(finders.normalized_margin(probs, labels), [(0.8 + 1) / 2, (0.5 + 1) / 2, (-0.3 + 1) / 2,
                                                                 (0.5 + 1) / 2, (0.15 + 1) / 2])
    # thresholds t_j = mean self-confidence of class j: t = [0.725, 0.5, 0.7]; row 2 (labelled 1) has p_0 = 0.6 <
    # 0.725 and p_1 = 0.3 < 0.5: not counted; row 4 (labelled 0): p_0 = 0.55 < 0.725, p_1 = 0.4 < 0.5: not counted
    assert finders.confident_joint_issues(probs, labels).tolist() == [False, False, False, False, False]
    probs[2] = [0.75, 0.2, 0.05]  # p_0 >= t_0 = 0.725: labelled 1, confidently 0 (t_1 is now 0.45 > row 4's 0.4)
    assert finders.confident_joint_issues(probs, labels).tolist() == [False, False, True, False, False]
    table = finders.label_scores(probs, labels, ["a", "b", "c"])
    assert table["score"].idxmax() == 2 and table.loc[2, "suggested"] == "a"


def test_hash_pairs_and_union_find(tmp_path):
    rng = np.random.default_rng(1)
    a = Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)).resize((128, 128), Image.BICUBIC)
    b = Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)).resize((128, 128), Image.BICUBIC)
    a.save(tmp_path / "a.jpg", quality=95)
    shutil.copy(tmp_path / "a.jpg", tmp_path / "a-same.jpg")
    _jpeg(a.resize((96, 96)), tmp_path / "a-small.jpg", quality=40)
    b.save(tmp_path / "b.jpg", quality=95)
    ids = ["a", "a-same", "a-small", "b"]
    pairs, groups = duplicates.find_copies(tmp_path, ids, [f"{i}.jpg" for i in ids])
    assert set(zip(pairs["a"], pairs["b"])) == {("a", "a-same"), ("a", "a-small"), ("a-same", "a-small")}
    assert pairs.set_index(["a", "b"]).loc[("a", "a-same"), "how"] == "identical file"
    assert groups == {"a": "a", "a-same": "a", "a-small": "a"}
    uf = duplicates.UnionFind("wxyz")
    uf.union("z", "y"), uf.union("y", "x")
    assert uf.groups() == {"w": "w", "x": "x", "y": "x", "z": "x"}


# --- the command line ---------------------------------------------------------------------------------------------

def test_cli_writes_findings_and_a_finding_becomes_a_decision(faulty, tmp_path, capsys):
    from artlab.cli.commands import main
    from artlab.collection.curation import effective
    collection, truth = faulty
    work = tmp_path / "collection"
    shutil.copytree(collection, work)
    out = tmp_path / "audit"
    assert main(["audit", str(work), "--label", "genre", "--out", str(out), "--top", "5"]) == 0
    table = pd.read_csv(out / "findings.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["kind", "id", "related", "score", "rank"]
    for kind, rows in table.groupby("kind"):
        assert rows["rank"].astype(int).tolist() == list(range(1, len(rows) + 1))
        assert rows["score"].astype(float).is_monotonic_decreasing
    assert set(table["kind"]) == {"near-copy", "not-a-painting", "label"}
    report = (out / "report.md").read_text()
    assert "](pictures/near-copy-001.jpg)" in report and "artlab curate" in report
    assert (out / "pictures" / "not-a-painting-001.jpg").is_file()
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    assert main(["audit", str(work), "--out", str(user)]) == 2  # a folder artlab did not write is refused
    assert main(["curate", str(work), "--from-findings", str(out / "findings.csv"), "--kind", "label", "--top",
                 "1"]) == 0
    first = table[table["kind"] == "label"].iloc[0]
    curated = effective(work)
    assert curated.manifest.set_index("id").loc[first["id"], "genre"] == first["related"]
    assert curated.record()["relabelled"] == 1  # what the next run's card records in task.curation
    assert main(["curate", str(work), "--from-findings", str(out), "--kind", "not-a-painting", "--top", "2",
                 "--dry-run"]) == 0
    assert "--exclude --reason 'not a painting'" in capsys.readouterr().out


# --- splits: leakage and --group-duplicates -----------------------------------------------------------------------

def test_leakage_recorded_and_group_duplicates_keeps_copies_together(faulty):
    from artlab.train.config import TrainConfig
    from artlab.train.data import make_task
    collection, truth = faulty
    leaky = None
    for seed in range(12):
        task = make_task(TrainConfig(collection=str(collection), label="genre", seed=seed, min_per_class=3))
        assert task.leakage["groups"] >= 2  # the hashes find the identical and the recompressed copy at least
        if task.leakage["groups_across_splits"]:
            leaky = seed
            break
    assert leaky is not None, "no seed put a copy and its twin in different splits"
    assert task.leakage["paintings_affected"] >= 2
    grouped = make_task(TrainConfig(collection=str(collection), label="genre", seed=leaky, min_per_class=3,
                                    group_duplicates=True))
    assert grouped.leakage["groups_across_splits"] == 0 and grouped.leakage["grouped"]
    split = dict(zip(grouped.df["id"], grouped.df["split"]))
    pairs, _ = duplicates.find_copies(collection, grouped.df["id"], grouped.df["path"])
    assert len(pairs) >= 2
    for a, b in zip(pairs["a"], pairs["b"]):
        assert split[a] == split[b]


def test_card_schema_checks_leakage(tmp_path):
    from artlab.errors import RunError
    from artlab.runcheck import validate_card
    card = {"task": {"label": "genre", "classes": ["a", "b"], "leakage": {"groups_across_splits": "two"}},
            "backbone": {"name": "x"}, "method": "m", "head": "h",
            "metrics": {m: {"accuracy": 1.0, "n": 1, "per_class": {}} for m in ("finetuned", "knn")}}
    with pytest.raises(RunError, match="task.leakage.groups_across_splits"):
        validate_card(card, tmp_path / "card.json", {}, frozenset())


@pytest.mark.train
def test_a_run_on_a_collection_with_copies_across_splits_has_leakage(faulty, tmp_path):
    from artlab.runfolder import Run
    from artlab.train.config import TrainConfig
    from artlab.train.runner import train_run
    collection, _ = faulty
    from artlab.train.data import make_task
    seed = next(s for s in range(12) if make_task(TrainConfig(collection=str(collection), min_per_class=3,
                                                              seed=s)).leakage["groups_across_splits"])
    cfg = TrainConfig(collection=str(collection), label="genre", method="transfer", epochs=1, cache_views=0,
                      min_per_class=3, seed=seed, device="cpu")
    run = Run.open(train_run(cfg, tmp_path / "run", umap=False))
    leak = run.card["task"]["leakage"]
    assert leak["groups_across_splits"] >= 1 and leak["paintings_affected"] >= 2

    from artlab.audit import audit_collection
    audit = audit_collection(collection, "genre", run=run, cache=tmp_path / "features", top=5)
    assert audit.run["groups_across_splits"] >= 1
    assert set(audit.run["accuracy"]) == {"finetuned", "knn"}


# --- the app's review page ----------------------------------------------------------------------------------------

def test_review_page_shows_findings_and_a_click_records_a_decision(faulty, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from artlab.cli.commands import main
    from artlab.collection.curation import effective
    collection, truth = faulty
    work = tmp_path / "collection"
    shutil.copytree(collection, work)
    root = tmp_path / "runs"
    assert main(["audit", str(work), "--label", "genre", "--out", str(root / "audit-1"), "--top", "4"]) == 0
    monkeypatch.setenv("ARTLAB_RUNS", str(root))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120).run()
    at.switch_page("pages/review.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Review the collection"
    assert [t.label.split(" (")[0] for t in at.tabs] == ["Near-copies", "Not a painting", "Label looks wrong"]
    assert len(at.image) >= 8  # the pictures side by side, in every tab
    table = pd.read_csv(root / "audit-1" / "findings.csv", dtype=str, keep_default_na=False)
    first = table[table["kind"] == "not-a-painting"].iloc[0]
    at.button(key="review_not-a-painting_1").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert first["id"] in effective(work).excluded
    assert any("excluded" in str(s.value) and first["id"].split("-")[1] in str(s.value) for s in at.success)


def test_met_build_writes_the_not_a_painting_ranking_beside_table_1(faulty, tmp_path, monkeypatch):
    from artlab.cli.audit import met_proposals
    from artlab.collection.met import labels
    collection, truth = faulty
    work = tmp_path / "met"
    shutil.copytree(collection, work)
    culture = pd.read_csv(work / "manifest.csv", dtype=str, keep_default_na=False)["culture"]
    first = culture[culture != ""].iloc[0]
    monkeypatch.setattr(labels, "PAPER_TABLE1", {first: (100, 90)})
    out = met_proposals(work)
    ranked = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(ranked) == len(culture) and ranked["rank"].tolist()[:3] == ["1", "2", "3"]
    assert set(ranked["id"].head(6)) & truth["odd"]
    text = (work / "not-a-painting.md").read_text()
    assert f"| {first} |" in text and "| 100 | 90 | 10 |" in text


def test_split_groups_join_artists_and_copies():
    from artlab.train.splits import split_groups
    df = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "artist": ["Rembrandt", "Rembrandt", "unknown", "", "Hals"]})
    assert split_groups(df, True, {}).equals(df["artist"])  # no copies: the artist column, as before
    keys = split_groups(df, True, {"c": "b", "b": "b"}).tolist()  # c is a copy of Rembrandt's b
    assert keys[0] == keys[1] == keys[2] != "" and keys[3] == "" and keys[4] == ""
    keys = split_groups(df, False, {"c": "b", "b": "b"}).tolist()
    assert keys[1] == keys[2] != "" and keys[0] == keys[3] == keys[4] == ""


def test_the_sidebar_warns_of_copies_across_splits():
    from artlab.app.review import leakage_warning
    assert leakage_warning({"task": {"leakage": {"groups_across_splits": 0}}}) == ""
    assert leakage_warning({"task": {}}) == ""
    text = leakage_warning({"task": {"leakage": {"groups_across_splits": 2, "test_paintings_affected": 1}}})
    assert text.startswith("2 painting(s)") and "--group-duplicates" in text


def test_artlab_data_met_proposes_after_the_build(faulty, tmp_path, monkeypatch, capsys):
    import artlab.collection.met as met
    from artlab.cli.commands import main
    from artlab.collection.contract import BuildReport
    collection, _ = faulty

    def fake_build(out, objects, **kwargs):  # the build itself is tests/test_met.py's; here only what follows it
        shutil.copytree(collection, out)
        return BuildReport(source="met (stand-in)", kept=23)

    monkeypatch.setattr(met, "build_met", fake_build)
    assert main(["data", "met", "--objects", "MetObjects.csv", "--out", str(tmp_path / "met")]) == 0
    assert (tmp_path / "met" / "not-a-painting.md").is_file() and "not-a-painting proposals" in capsys.readouterr().out
    assert main(["data", "met", "--objects", "x", "--out", str(tmp_path / "met2"), "--no-audit"]) == 0
    assert not (tmp_path / "met2" / "not-a-painting.csv").exists()


def test_a_near_copy_finding_leaves_out_the_smaller_picture(faulty, audited):
    resized = next(p for pair in faulty[1]["pairs"] for p in pair if p.startswith("copy-resized-"))
    original = resized.removeprefix("copy-resized-")
    pair = audited.pairs[(audited.pairs["a"] == resized) | (audited.pairs["b"] == resized)]
    assert pair[["a", "b"]].values.tolist() == [[resized, original]]  # the resized copy goes, the original stays


@pytest.mark.parametrize("option", [["--folds", "1"], ["--folds", "0"], ["--top", "-1"],
                                    ["--copy-similarity", "nan"], ["--copy-similarity", "1.5"]])
def test_audit_options_out_of_range_are_one_line_before_any_work(faulty, tmp_path, capsys, option):
    from artlab.cli.commands import main
    out = tmp_path / "audit"
    assert main(["audit", str(faulty[0]), "--label", "genre", "--out", str(out), *option]) == 2
    err = capsys.readouterr().err
    assert option[0] in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # refused before --out was claimed or a feature computed


def test_more_folds_than_artists_is_one_line():
    import pandas as pd
    from artlab.errors import ConfigError
    from artlab.train.selection import artist_folds
    with pytest.raises(ConfigError, match="need at least 5 artists"):
        artist_folds(np.array([0, 1, 0, 1]), pd.Series(["A", "B", "A", "B"]), 5, seed=0)


def test_predict_refuses_an_empty_path(tmp_path, capsys):
    from artlab.cli.commands import main
    assert main(["predict", "checkpoints/demo-genre", "", "--csv", str(tmp_path / "p.csv")]) == 2
    assert "empty image path" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()
