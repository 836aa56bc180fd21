from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from core.settings import PredictorSettings
from eval.tracking_job import MotExportJob, TrackingEvalJob
from jobs.cli import app
from jobs.config import InferConfig
from jobs.specs import SpecError, dump_spec, load_spec, parse_spec, to_dict
from pipelines.inference import Resources
from pipelines.tracking import TrackingSettings

runner = CliRunner()


def infer_spec(**changes) -> dict:
    section = {"inputs": ["/data/a.jpg", "/data/clip.mp4"], "model": "bev", "checkpoint": "/models/BEV.pth",
               "body_models": "/models/smpl", "output": "/out/results",
               "settings": {"precision": "bf16", "center_thresh": 0.2}, "resources": {"actors": 4}}
    section.update(changes)
    return {"kind": "infer", "infer": section}


def test_round_trip_of_every_kind(tmp_path):
    cfg = InferConfig(inputs=("/a.jpg",), model="romp", checkpoint="/c.pkl", body_models="/b", output="s3://x/y",
                      settings=PredictorSettings(crowd=False, batch_size=4), resources=Resources(actors=2),
                      track=TrackingSettings())
    kind, back = parse_spec(yaml.safe_load(dump_spec("infer", cfg)))
    assert kind == "infer" and back == cfg
    for text in ("kind: leaderboard\nleaderboard: {output: /tmp/board, experiments: [a, b]}\n",
                 "kind: track\ntrack: {results: /r, output: /o, settings: {smoothing: {smooth_coeff: 1.5}}}\n",
                 "kind: eval\neval: {config: {benchmark: cmu-panoptic, predictions: /p, data: /d, protocol: fixed},"
                 " output_json: /m.json}\n"):
        path = tmp_path / "s.yaml"
        path.write_text(text)
        kind, job = load_spec(path)
        assert parse_spec(yaml.safe_load(dump_spec(kind, job))) == (kind, job)
    toml = tmp_path / "s.toml"
    toml.write_text('kind = "track"\n[track]\nresults = "/r"\noutput = "/o"\noverwrite = true\n')
    assert load_spec(toml)[1].overwrite is True


@pytest.mark.parametrize("change,message", [
    ({"settings": {"precison": "bf16"}}, "infer.settings.precison: unknown key"),
    ({"settings": {"precision": "int8"}}, "infer.settings: precision must be one of"),
    ({"resources": {"actors": "four"}}, "infer.resources.actors: expected an integer"),
    ({"inputs": "/data/a.jpg"}, "infer.inputs: expected a list"),
    ({"track": {"tracker": {"det_thresh": "high"}}}, "infer.track.tracker.det_thresh: expected a number"),
    ({"overwrite": "yes"}, "infer.overwrite: expected true/false"),
    ({"colour": "red"}, "infer.colour: unknown key"),
])
def test_bad_keys_and_values_are_named(change, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(infer_spec(**change))


def test_missing_and_foreign_keys():
    data = infer_spec()
    del data["infer"]["output"]
    with pytest.raises(SpecError, match="infer.output: missing required key"):
        parse_spec(data)
    with pytest.raises(SpecError, match="kind: expected one of"):
        parse_spec({"kind": "fly"})
    with pytest.raises(SpecError, match="eval: unknown key"):
        parse_spec({**infer_spec(), "eval": {}})


def test_dry_run_prints_the_resolved_spec_and_flags_override_it(tmp_path):
    spec = tmp_path / "infer.yaml"
    spec.write_text(yaml.safe_dump(infer_spec()))
    result = runner.invoke(app, ["infer", "--spec", str(spec), "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    kind, from_file = load_spec(spec)
    assert printed == yaml.safe_load(dump_spec(kind, from_file)) == {"kind": "infer", "infer": to_dict(from_file)}
    result = runner.invoke(app, ["infer", "--spec", str(spec), "--dry-run", "--center-thresh", "0.3",
                                 "--actors", "1", "--track", "--smooth-coeff", "1.5"])
    printed = yaml.safe_load(result.output)["infer"]
    assert printed["settings"]["center_thresh"] == 0.3 and printed["settings"]["precision"] == "bf16"
    assert printed["resources"]["actors"] == 1 and printed["track"]["smoothing"]["smooth_coeff"] == 1.5
    assert printed["settings"]["bev_variant"] == "bev"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(infer_spec(settings={"precison": "bf16"})))
    result = runner.invoke(app, ["infer", "--spec", str(bad), "--dry-run"])
    assert result.exit_code == 2 and "infer.settings.precison: unknown key" in result.output
    result = runner.invoke(app, ["run", str(spec), "--dry-run"])
    assert result.exit_code == 0 and yaml.safe_load(result.output)["kind"] == "infer"


def test_eval_and_leaderboard_dry_runs(tmp_path):
    result = runner.invoke(app, ["eval", "cmu-panoptic", "--predictions", "/p", "--data", "/d", "--protocol",
                                 "fixed", "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)["eval"]
    assert printed["config"] == {"benchmark": "cmu-panoptic", "predictions": "/p", "protocol": "fixed", "data": "/d",
                                 "annots": None, "body_models": None, "split": "test"}
    result = runner.invoke(app, ["leaderboard", "--output", str(tmp_path), "--experiment", "x", "--dry-run"])
    assert yaml.safe_load(result.output)["leaderboard"]["experiments"] == ["x"]
    assert Path(yaml.safe_load(result.output)["leaderboard"]["output"]) == tmp_path


def test_eval_tracking_takes_a_spec_and_dry_run(tmp_path):
    spec = tmp_path / "track-eval.yaml"
    spec.write_text("kind: eval-tracking\neval-tracking: {results: /r, gt: /gt, iou: 0.4, split: mupots}\n")
    result = runner.invoke(app, ["eval", "tracking", "--spec", str(spec), "--no-mlflow", "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert printed["kind"] == "eval-tracking"
    assert printed["eval-tracking"] == {"results": "/r", "gt": "/gt", "output": None, "iou": 0.4, "split": "mupots",
                                        "mlflow_uri": None, "use_mlflow": False}
    assert parse_spec(printed) == ("eval-tracking", TrackingEvalJob("/r", "/gt", iou=0.4, split="mupots",
                                                                    use_mlflow=False))
    spec.write_text("kind: eval-tracking\neval-tracking: {results: /r, gt: /gt, iou: 1.5}\n")
    bad = runner.invoke(app, ["eval", "tracking", "--spec", str(spec), "--dry-run"])
    assert bad.exit_code == 2 and "iou must be in (0, 1]" in bad.output
    missing = runner.invoke(app, ["eval", "tracking", "--dry-run"])
    assert missing.exit_code == 2 and "--gt" in missing.output


def test_export_mot_takes_a_spec_and_dry_run(tmp_path):
    spec = tmp_path / "export.toml"
    spec.write_text('kind = "export-mot"\n[export-mot]\nresults = "/r"\noutput = "s3://b/mot"\n')
    result = runner.invoke(app, ["export", "mot", "--spec", str(spec), "--output", "/elsewhere", "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert printed == {"kind": "export-mot", "export-mot": {"results": "/r", "output": "/elsewhere"}}
    assert parse_spec(printed) == ("export-mot", MotExportJob("/r", "/elsewhere"))
    spec.write_text('kind = "export-mot"\n[export-mot]\nresults = "/r"\n')
    bad = runner.invoke(app, ["export", "mot", "--spec", str(spec), "--dry-run"])
    assert bad.exit_code == 2 and "export-mot.output" in bad.output
    assert runner.invoke(app, ["export", "mot", "/r", "--dry-run"]).exit_code == 2


def test_names_from_the_checkpoint_are_resolved_everywhere(tmp_path):
    """model and bev_variant follow the checkpoint file name in infer, eval --checkpoint and spec files."""
    section = {"inputs": ["/a.jpg"], "checkpoint": "/models/BEV_ft_agora.pth", "body_models": "/b", "output": "/o"}
    kind, cfg = parse_spec({"kind": "infer", "infer": section})
    assert cfg.model == "bev" and cfg.settings.bev_variant == "bev_ft_agora"
    kind, job = parse_spec({"kind": "eval", "eval": {"config": {"benchmark": "agora", "predictions": "/p"},
                                                     "infer": section}})
    assert job.infer.settings.bev_variant == "bev_ft_agora" and job.config.split == "validation"
    result = runner.invoke(app, ["infer", "/a.jpg", "--checkpoint", "/m/ROMP.pkl", "--dry-run"])
    assert yaml.safe_load(result.output)["infer"]["model"] == "romp"
    result = runner.invoke(app, ["eval", "agora", "--data", "/d", "--checkpoint", "/m/BEV_ft_agora.pth", "--dry-run"])
    infer = yaml.safe_load(result.output)["eval"]["infer"]
    assert infer["model"] == "bev" and infer["settings"]["bev_variant"] == "bev_ft_agora"
    assert infer["settings"]["crowd"] is False and infer["output"].endswith("results-agora")
    result = runner.invoke(app, ["eval", "relative-human", "--annots", "/rh/val_annots.npz", "--predictions", "/p",
                                 "--address", "auto", "--dry-run"])
    printed = yaml.safe_load(result.output)["eval"]
    assert printed["config"]["split"] == "val" and printed["address"] == "auto" and printed["infer"] is None


def test_old_option_names_are_hidden_aliases(tmp_path):
    track = runner.invoke(app, ["track", "/r", "--output", "/o", "--det-thresh", "0.3", "--low-thresh=0.1",
                                "--dry-run"])
    tracker = yaml.safe_load(track.output)["track"]["settings"]["tracker"]
    assert track.exit_code == 0 and (tracker["det_thresh"], tracker["low_thresh"]) == (0.3, 0.1)
    new = runner.invoke(app, ["track", "/r", "--output", "/o", "--track-det-thresh", "0.3", "--dry-run"])
    assert yaml.safe_load(new.output)["track"]["settings"]["tracker"]["det_thresh"] == 0.3
    board = runner.invoke(app, ["leaderboard", "--output", str(tmp_path), "--tracking-uri", "sqlite:///x.db",
                                "--dry-run"])
    assert yaml.safe_load(board.output)["leaderboard"]["tracking_uri"] == "sqlite:///x.db"
    board = runner.invoke(app, ["leaderboard", "--output", str(tmp_path), "--mlflow-uri", "sqlite:///y.db",
                                "--dry-run"])
    assert yaml.safe_load(board.output)["leaderboard"]["tracking_uri"] == "sqlite:///y.db"
    for flag in ("--output", "--output-json"):
        result = runner.invoke(app, ["eval", "tracking", "/r", "--gt", "/gt", flag, "/m.json", "--dry-run"])
        assert yaml.safe_load(result.output)["eval-tracking"]["output"] == "/m.json"


def test_eval_address_alone_reaches_ray(tmp_path, monkeypatch):
    """--address without --checkpoint is used for the evaluation itself (after the inputs are checked)."""
    import jobs.infer

    seen = []

    class Stop(Exception):
        pass

    def ensure_ray(address):
        seen.append(address)
        raise Stop

    monkeypatch.setattr(jobs.infer, "ensure_ray", ensure_ray)
    (tmp_path / "p").mkdir()
    result = runner.invoke(app, ["eval", "cmu-panoptic", "--data", str(tmp_path), "--predictions",
                                 str(tmp_path / "p"), "--address", "ray://head:10001"])
    assert isinstance(result.exception, Stop) and seen == ["ray://head:10001"]
