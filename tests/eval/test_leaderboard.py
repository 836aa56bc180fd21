import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.leaderboard import BENCHMARKS, RegistryError, build_tables, load_registry
from eval.leaderboard_job import REGISTRY, LeaderboardJob, run_leaderboard
from eval.mlflow_log import log_run
from jobs.cli import app

RUNS = [  # (benchmark, split, protocol, version, metrics)
    ("agora", "validation", "official", "1.0", {"nmve": 120.0, "nmje": 125.0, "f1": 0.9, "mpjpe": 110.0}),
    ("agora", "validation", "official", "1.0", {"nmve": 100.0, "nmje": 130.0, "f1": 0.8, "mpjpe": 90.0}),
    ("agora", "validation", "fixed", "1.0", {"nmve": 90.0, "nmje": 95.0, "f1": 0.95, "mpjpe": 85.0}),
    ("agora", "test", "official", "1.0", {"nmve": 105.0, "f1": 0.93}),
    ("relative-human", "val", "official", "1.0", {"pcrd": 61.0, "mpckh": 80.0, "f1": 0.9}),
    ("relative-human", "val", "official", "1.0", {"pcrd": 66.0, "mpckh": 70.0, "f1": 0.8}),
    ("3dpw", "test", "official", "0.9", {"pa_mpjpe": 55.0, "mpjpe": 88.0, "pve": 104.0}),
    ("3dpw", "test", "official", "1.0", {"pa_mpjpe": 54.0, "mpjpe": 86.0, "pve": 103.0}),
    ("tracking", "custom", "official", "1.0", {"HOTA": 0.5, "mota": 0.6, "idf1": 0.7, "num_switches": 3}),
]


def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.bar([0, 1], [1, 2])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ids = []
    for i, (bench, split, protocol, version, metrics) in enumerate(RUNS):
        params = {"benchmark": bench, "split": split, "track": "smpl", "protocol": protocol,
                  "evaluator_version": version, "model": "bev" if i % 2 else "romp",
                  "checkpoint_sha256": f"{i:02d}" + "ab" * 31, "thresholds": {"center": 0.1},
                  "meshfleet_version": "0.1.0"}
        ids.append(log_run("meshfleet-eval", f"{bench}-{protocol}", params, metrics, {"metrics.json": metrics},
                           uri, binary_artifacts={"plot.png": _png()} if i == 1 else None))
    return uri, ids


@pytest.fixture(scope="module")
def board(store, tmp_path_factory):
    uri, ids = store
    out = tmp_path_factory.mktemp("board")
    tables = run_leaderboard(LeaderboardJob(out, uri, run_url="http://mlflow.local/#/runs/{run_id}"))
    return tables, out, ids


def test_tables_never_mix_keys(board):
    tables, _, _ = board
    keys = [t.key for t in tables]
    assert len(keys) == len(set(keys))
    assert ("agora", "validation", "smpl", "official", "1.0") in keys
    assert ("agora", "validation", "smpl", "fixed", "1.0") in keys
    assert ("3dpw", "test", "smpl", "official", "0.9") in keys and ("3dpw", "test", "smpl", "official", "1.0") in keys
    agora_val = next(t for t in tables if t.key == ("agora", "validation", "smpl", "official", "1.0"))
    assert [r.kind for r in agora_val.rows].count("run") == 2
    # reported rows only where (benchmark, split, track, protocol) match
    agora_test = next(t for t in tables if t.key == ("agora", "test", "smpl", "official", "1.0"))
    reported = [r for r in agora_test.rows if r.kind == "reported"]
    assert {"BEV (fine-tuned on AGORA)", "ROMP (fine-tuned on AGORA)"} <= {r.label for r in reported}
    assert all("Table 2" in r.details["source"] or "README" in r.details["source"] for r in reported)
    assert not [r for r in agora_val.rows if r.kind == "reported" and r.label.startswith("ROMP")]


def test_ordering_and_best_marks_follow_metric_direction(board):
    tables, out, _ = board
    agora_val = next(t for t in tables if t.key == ("agora", "validation", "smpl", "official", "1.0"))
    runs = [r for r in agora_val.rows if r.kind == "run"]
    assert [r.metrics["nmve"] for r in runs] == [100.0, 120.0]  # lower NMVE first
    # best over every row of the table, the reported SAT-HMR validation numbers included
    assert agora_val.best("nmve") == 100.0 and agora_val.best("f1") == 0.95 and agora_val.best("nmje") == 125.0
    assert agora_val.best("mpjpe") == 63.0
    rh = next(t for t in tables if t.key[:2] == ("relative-human", "val") and t.protocol == "official")
    assert [r.metrics["pcrd"] for r in rh.rows if r.kind == "run"] == [66.0, 61.0]  # higher PCRD first
    md = (out / "leaderboard.md").read_text()
    section = md.split("## AGORA · validation · SMPL track · official protocol · evaluator 1.0")[1].split("## ")[0]
    assert "**100.0**" in section and "**0.95**" in section and "**125.0**" in section and "**0.90**" not in section
    assert "[run " in section and "http://mlflow.local/#/runs/" in section


def test_runs_show_what_reproduces_them(board):
    tables, out, ids = board
    md = (out / "leaderboard.md").read_text()
    assert "checkpoint 01ababababab" in md and "meshfleet 0.1.0" in md and "thresholds" in md
    html = (out / "index.html").read_text()
    assert all(f"http://mlflow.local/#/runs/{run_id}" in html for run_id in ids)
    assert "data:image/png;base64," in html  # the chart artifact of the best AGORA run
    assert "<script" in html and "http://" not in html.split("<script")[1].split("</script>")[0]


def test_registry_is_validated(tmp_path):
    assert len(load_registry(REGISTRY)) >= 20
    cases = {
        "benchmark: agoraa": "unknown benchmark 'agoraa'",
        "split: train": "unknown split 'train' for agora",
        "track: smplh": "unknown track 'smplh'",
        "protocol: strict": "unknown protocol 'strict'",
    }
    base = {"method": "X", "benchmark": "agora", "split": "test", "track": "smpl", "protocol": "official",
            "metrics": "{f1: 0.9}", "source": "paper"}
    for change, message in cases.items():
        key, value = change.split(": ")
        entry = {**base, key: value}
        text = "results:\n  - {" + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "}\n"
        (tmp_path / "r.yaml").write_text(text)
        with pytest.raises(RegistryError, match=re.escape(message)):
            load_registry(tmp_path / "r.yaml")
    (tmp_path / "r.yaml").write_text("results:\n  - {method: X, benchmark: agora, split: test, track: smpl, "
                                     "protocol: official, metrics: {pcrd: 0.5}, source: s}\n")
    with pytest.raises(RegistryError, match="metrics must be"):
        load_registry(tmp_path / "r.yaml")
    (tmp_path / "r.yaml").write_text("results:\n  - {method: X, benchmark: agora}\n")
    with pytest.raises(RegistryError, match=r"results\[0\]: missing"):
        load_registry(tmp_path / "r.yaml")
    result = CliRunner().invoke(app, ["leaderboard", "--output", str(tmp_path / "o"), "--registry",
                                      str(tmp_path / "r.yaml"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert result.exit_code == 2 and "missing" in result.output


def test_reported_only_tables_and_empty_store(tmp_path):
    tables = build_tables([], load_registry(REGISTRY))
    assert tables and all(t.evaluator_version == "–" for t in tables)
    assert {t.benchmark.name for t in tables} >= {"agora", "cmu-panoptic", "3dpw", "tracking"}
    assert set(BENCHMARKS) >= {t.benchmark.name for t in tables}


def test_runs_of_prediction_files_never_show_none(tmp_path):
    """A run scored from a predictions file (no model, and None params logged by older versions as
    "None") shows its predictions' name, and lands in the benchmark's default split table."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    params = {"benchmark": "agora", "split": None, "track": "smpl", "protocol": "official",
              "evaluator_version": "1.0", "predictions": "/data/agora_preds.zip", "model": None,
              "checkpoint_sha256": None, "thresholds": None, "meshfleet_version": None}
    log_run("meshfleet-eval", "agora-official", params, {"nmve": 150.0, "f1": 0.7}, {"metrics.json": {}}, uri)
    tables = run_leaderboard(LeaderboardJob(tmp_path / "board", uri))
    table = next(t for t in tables if any(r.kind == "run" for r in t.rows))
    assert table.key == ("agora", "validation", "smpl", "official", "1.0")
    (run,) = [r for r in table.rows if r.kind == "run"]
    assert run.label == "agora_preds.zip" and set(run.details) == {"date", "predictions"}
    for page in ("leaderboard.md", "index.html"):
        assert "None" not in (tmp_path / "board" / page).read_text()


def test_no_matching_runs_is_a_warning_with_exit_2(store, tmp_path):
    uri, _ = store
    result = CliRunner().invoke(app, ["leaderboard", "--output", str(tmp_path / "o"), "--mlflow-uri", uri,
                                      "--experiment", "meshfleet-evl"])
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert result.stderr.startswith("warning: ") and uri in result.stderr and "meshfleet-evl" in result.stderr
    assert "the store holds: Default, meshfleet-eval)" in result.stderr
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).create_experiment("empty")
    result = CliRunner().invoke(app, ["leaderboard", "--output", str(tmp_path / "o"), "--mlflow-uri", uri,
                                      "--experiment", "empty"])
    assert result.exit_code == 2 and "no finished evaluation run in experiment empty" in result.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _dump_dom(browser: str, page: Path, fragment: str, tmp: Path) -> str:
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
            "--virtual-time-budget=2000"]
    shot = subprocess.run([*args, f"--screenshot={tmp / 'shot.png'}", "--window-size=1400,2000",
                           page.as_uri() + fragment], capture_output=True, timeout=120)
    assert shot.returncode == 0 and (tmp / "shot.png").stat().st_size > 10_000, shot.stderr[-2000:]
    dom = subprocess.run([*args, "--dump-dom", page.as_uri() + fragment], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout


def test_html_renders_in_a_headless_browser(board, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian package 'chromium'); the HTML check needs a real browser")
    tables, out, _ = board
    index = next(i for i, t in enumerate(tables) if t.key == ("agora", "validation", "smpl", "official", "1.0"))
    f1_col = 2 + [m.key for m in tables[index].benchmark.metrics].index("f1")
    dom = _dump_dom(browser, out / "index.html", f"#sort={index}:{f1_col}:desc", tmp_path)
    assert 'data-ready="1"' in dom  # the script ran
    assert dom.count("<table class=\"board\"") == len(tables)
    table_html = dom.split(f'id="t{index}"')[1].split("</table>")[0]
    rows = re.findall(r'<tr class="(run|reported)">(.*?)</tr>', table_html)
    assert len(rows) == len(tables[index].rows)
    assert f'data-sorted="{f1_col}:desc"' in dom
    firsts = [re.findall(r"<td([^>]*)>", row)[f1_col] for _, row in rows]
    f1 = [float(m.group(1)) if (m := re.search(r'data-value="([0-9.]+)"', c)) else -1.0 for c in firsts]
    assert f1 == sorted(f1, reverse=True) and f1[0] == 0.95  # sorted by F1 in the browser, highest first
    assert 'class="best"' in table_html
