"""bench/common.record: BENCHMARKS.md stays a reference by topic when a benchmark writes to it."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import common  # noqa: E402


def headings(text):
    return re.findall(r"^(#{1,3}) (.+)$", text, re.M)


def test_record_places_results_under_their_topic_and_replaces_a_superseded_one(tmp_path):
    path = str(tmp_path / "BENCHMARKS.md")
    with open(path, "w") as f:
        f.write("# Benchmarks\n\nIntro.\n\n## Contents\n\n(stale)\n\n"
                f"## {common.TOPICS['accuracy']}\n\n### Old accuracy\n\nsuperseded text\n\n"
                f"## {common.TOPICS['ckplus']}\n\n### Folds\n\nfold text\n")
    common.record("Latency A", "| a |\n|---|\n| 1 |", "latency", where="CPU X", path=path)
    common.record("New accuracy", "acc body", "accuracy", path=path)
    common.record("Old accuracy", "replaced body", "accuracy", where="CPU Y", path=path)
    text = open(path).read()
    assert [h for _, h in headings(text)] == [
        "Benchmarks", "Contents", common.TOPICS["accuracy"], "Old accuracy", "New accuracy",
        common.TOPICS["ckplus"], "Folds", common.TOPICS["latency"], "Latency A"]
    # replaced in place, the next section and the next topic untouched
    assert "superseded text" not in text and "Machine: CPU Y.\n\nreplaced body" in text
    assert "fold text" in text and "Machine: CPU X." in text
    # the contents list is rebuilt from the headings, with working anchors
    block = text.split("## Contents\n")[1].split(f"## {common.TOPICS['accuracy']}\n")[0]
    assert "(stale)" not in block
    acc = common.TOPICS["accuracy"]
    assert f"- **[{acc}](#{common.anchor(acc)})**: [Old accuracy](#old-accuracy); [New accuracy](#new-accuracy)" in block
    lat = common.TOPICS["latency"]
    assert f"- **[{lat}](#{common.anchor(lat)})**: [Latency A](#latency-a)" in block
    assert block.index("New accuracy") < block.index("Folds") < block.index("Latency A")


def test_anchor_is_githubs():
    assert common.anchor("Live path at 640x480, one face") == "live-path-at-640x480-one-face"
    assert common.anchor("CK+ 10-fold, VGG19 (w0.25)") == "ck-10-fold-vgg19-w025"
    assert common.anchor("predict.py over `many` faces") == "predictpy-over-many-faces"


def test_every_heading_of_the_repo_benchmarks_is_in_its_contents_and_every_link_resolves():
    text = open(os.path.join(common.ROOT, "BENCHMARKS.md")).read()
    titles = [t for level, t in headings(text) if level in ("##", "###") and t != "Contents"]
    assert common.contents(text) == text, "the contents list is out of date: rerun bench/common.contents"
    assert set(titles) <= set(common.TOPICS.values()) | {t for level, t in headings(text) if level == "###"}
    assert [t for level, t in headings(text) if level == "##"][1:] == list(common.TOPICS.values())
    anchors = {common.anchor(t) for _, t in headings(text)}
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, target
    for fig in re.findall(r"\(?(docs/[\w.-]+\.png)", text):
        assert os.path.exists(os.path.join(common.ROOT, fig)), fig


def test_sections_the_docs_cite_exist_and_every_figure_is_referenced():
    text = open(os.path.join(common.ROOT, "BENCHMARKS.md")).read()
    titles = [t for _, t in headings(text)]
    docs = {name: open(os.path.join(common.ROOT, name)).read() for name in ("README.md", "weights/README.md")}
    cited = [(name, c) for name, d in docs.items()
             for c in re.findall(r'BENCHMARKS\.md,? \(?"([^"]+)"', d.replace("\n", " "))]
    assert cited, "README no longer cites BENCHMARKS sections by name"
    for name, c in cited:
        assert any(t.startswith(c) for t in titles), f"{name} cites BENCHMARKS.md section '{c}', which is not there"
    everything = text + "".join(docs.values())
    for fig in os.listdir(os.path.join(common.ROOT, "docs")):
        assert f"docs/{fig}" in everything, f"docs/{fig} is referenced nowhere"


def test_recorded_rows_reads_the_first_table_of_a_section(tmp_path):
    """A table that grows over sessions reads its earlier rows back from BENCHMARKS.md."""
    path = str(tmp_path / "BENCHMARKS.md")
    common.record("Lengths", "text\n\n| epochs | acc |\n|---|---|\n| 30 | 66.5 |\n| 250 | not measured |\n\n"
                  "| other | table |\n|---|---|\n| x | y |", "accuracy", path=path)
    common.record("After", "| a |\n|---|\n| 1 |", "accuracy", path=path)
    assert common.recorded_rows("Lengths", path=path) == [{"epochs": "30", "acc": "66.5"},
                                                          {"epochs": "250", "acc": "not measured"}]
    for missing in ("Nope", "After "):
        try:
            common.recorded_rows(missing, path=path)
        except SystemExit as e:
            assert path in str(e) and missing in str(e)
        else:
            raise AssertionError(f"no error for section {missing!r}")
