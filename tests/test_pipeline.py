"""The real `dvc repro` on a tiny demo: every stage, DVC metrics, MLflow, caching, experiments.

One run serves every test here (a full tiny run costs a minute or two on 2 cores);
the tests run in file order, and the ones that change the workspace come last.
"""

import csv
import io
import json
import re
import shlex
import shutil
import signal
import time
from pathlib import Path

import pytest

from helpers.kills import in_stage, kill_when, stages_in_log, temp_files
from helpers.pipeline_copy import check_runtime_edits_rerun_nothing, copy_repo, dvc
from helpers.sweeps import run_sweep

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The tiny pipeline, run once."""
    repo = copy_repo(tmp_path_factory.mktemp("pipeline"))
    result = dvc(repo, "repro")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return repo


def load(repo, rel):
    return json.loads((repo / rel).read_text())


def test_every_stage_produced_its_outputs(repo):
    raw = load(repo, "metrics/raw.json")
    assert raw["source"] == "demo"
    assert all(d["live"] and d["print"] and d["replay"] for d in raw["datasets"].values())
    assert (repo / "plots/datasets.png").stat().st_size > 10_000
    for code in "OCIM":  # the default data.datasets: what the default protocols read
        align = load(repo, f"metrics/align/{code}.json")
        assert align["detection_rate"] >= 0.95, (code, align["failures_by_reason"])
        assert (repo / f"plots/faces_{code}.png").is_file()
    manifests = load(repo, "metrics/manifests.json")["protocols"]
    assert set(manifests) == {"OCI-M", "OMI-C", "OCM-I", "ICM-O", "MI-C", "MI-O"}  # no ROSE-Youtu ones
    for name, roles in manifests.items():
        target = name.split("-")[1]
        assert set(roles["target"]) == {target}
        # every indexed target video with a face is in the target role (target_set: all)
        n_target = sum(v for k, v in roles["target"][target].items() if k != "faces")
        assert n_target == raw["datasets"][target]["videos"]
    assert (repo / "models/OCI-M/best.pt").is_file()
    md = (repo / "reports/summary.md").read_text()
    assert md.count("OCI-M") >= 1
    # the detection table: one row per dataset of the reported protocol, from metrics/align/<D>.json
    detection = load(repo, "metrics/summary.json")["detection"]
    assert sorted(detection) == ["C", "I", "M", "O"]
    for code, row in detection.items():
        assert re.search(rf"^\| {code} \(.*\) \| {row['videos']} \| ", md, re.M), code


def test_dvc_metrics_and_mlflow_agree(repo):
    from mlflow.tracking import MlflowClient

    shown = dvc(repo, "metrics", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    workspace = next(iter(data.values()))["data"]
    video = workspace["metrics/evaluate/OCI-M.json"]["data"]["video"]
    assert 0 <= video["auc"] <= 1 and 0 <= video["hter_eer"] <= 1

    run_id = load(repo, "models/OCI-M/run.json")["run_id"]
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["protocol"] == "OCI-M"
    assert run.data.metrics["eval/video/hter_eer"] == pytest.approx(video["hter_eer"])
    assert run.data.metrics["eval/video/auc"] == pytest.approx(video["auc"])
    assert "train.inner_loops" in run.data.params


def test_mlflow_lineage_and_registry_of_the_pipeline_run(repo):
    """The protocol run's manifest input, source tags and parent (holding the summary), and
    the registered ONNX model with the source-val alias."""
    from mlflow.tracking import MlflowClient

    run_id = load(repo, "models/OCI-M/run.json")["run_id"]
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    run = client.get_run(run_id)
    tags = run.data.tags
    assert tags["mlflow.source.name"] == "stages/train.py" and len(tags["mlflow.source.git.commit"]) == 40
    contexts = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert contexts["training"].name == "OCI-M" and contexts["evaluation"].name == "OCI-M (evaluation)"
    assert json.loads(contexts["training"].source) == {"uri": "data/manifests/OCI-M.csv"}
    assert run.data.metrics["video_auc"] == run.data.metrics["eval/video/auc"]
    parent = client.get_run(tags["mlflow.parentRunId"])
    assert parent.data.tags["pipeline_run"] == tags["pipeline_run"]
    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id, "summary")) == [
        "summary/summary.md", "summary/summary.png"]
    best = client.get_model_version_by_alias("mpfas-OCI-M", "best-source-val")
    assert best.run_id == run_id and tags["mpfas.model_sha256"] == best.tags["checkpoint_sha256"]


def test_the_baseline_method_learns_on_the_demo_faces(repo, tmp_path, monkeypatch):
    """SSDG-R (``model.method: ssdg``, its official lr) on the pipeline's own demo faces and
    manifest: its loss falls over a short run. Writes only under tmp_path (its own MLflow store)."""
    from dataclasses import replace

    import pandas as pd

    from mpfas.core.config import load_params
    from mpfas.train import train
    from mpfas.train.curves import Curves

    params = load_params(repo / "params.yaml")
    params = replace(params, model=replace(params.model, method="ssdg"),
                     train=replace(params.train, iterations=40, eval_every=40, batch_live=4, batch_spoof=4))
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}")
    curves = Curves.at(tmp_path / "loss.csv", tmp_path / "val.csv")
    result = train(params, "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
                   out_dir=tmp_path / "ssdg", curves=curves)
    loss = pd.read_csv(tmp_path / "loss.csv")["loss"]
    assert result.best_iteration == 40 and len(loss) == 40
    assert loss.tail(10).mean() < 0.9 * loss.head(10).mean(), loss.round(3).tolist()


def test_second_repro_is_a_no_op(repo):
    start = time.monotonic()
    result = dvc(repo, "repro")
    assert result.returncode == 0, result.stderr
    assert "Running stage" not in result.stdout
    assert time.monotonic() - start < 60


def _changed(repo):
    """Paths `dvc status` reports modified, deleted or new."""
    text = dvc(repo, "status").stdout
    return {line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.strip().split(":")[0] in {"modified", "deleted", "new", "not in cache"}}


def test_an_in_place_edit_of_an_output_never_reaches_the_cache(repo):
    """The audit's case: root (CI, containers) writes through DVC's read-only bit, so an output
    that shared its inode with the cache object (hardlink cache) took the cache with it."""
    manifest = repo / "data/manifests/OCI-M.csv"
    original = manifest.read_bytes()
    manifest.chmod(0o644)  # what root may do anyway
    with manifest.open("a") as f:
        f.write("M,x\n")
    assert "data/manifests" in _changed(repo)  # seen as an edit, not as the cached version
    restored = dvc(repo, "checkout", "-f", "data/manifests")
    assert restored.returncode == 0, restored.stderr
    assert manifest.read_bytes() == original  # the cache kept the pipeline's bytes
    assert "Data and pipelines are up to date." in dvc(repo, "status").stdout


def test_a_kill_during_evaluate_redoes_only_evaluate_and_what_follows(repo):
    from mlflow.tracking import MlflowClient

    outs = ("data/scores/OCI-M.csv", "metrics/evaluate/OCI-M.json", "reports/summary.md")
    before = {rel: (repo / rel).read_bytes() for rel in outs}
    script = repo / "stages/evaluate.py"  # a dependency edit that changes no result: evaluate@OCI-M runs again
    original = script.read_text()
    script.write_text(original + "# edited\n")
    kill = kill_when(repo, "evaluate", in_stage(repo, "evaluate", "evaluate@"))
    assert kill["stage"] == "evaluate@OCI-M" and kill["rc"] == -signal.SIGKILL, kill
    final = dvc(repo, "repro")
    assert final.returncode == 0, final.stdout[-4000:] + final.stderr[-4000:]
    ran = stages_in_log(final.stdout)[0]  # report too, unless evaluate's outputs came out unchanged
    assert ran[0] == "evaluate@OCI-M" and set(ran) <= {"evaluate@OCI-M", "report"}, ran
    assert {rel: (repo / rel).read_bytes() for rel in outs} == before
    assert temp_files(repo) == []
    run_id = load(repo, "models/OCI-M/run.json")["run_id"]
    assert MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_run(run_id).info.status == "FINISHED"
    script.write_text(original)
    assert dvc(repo, "repro").returncode == 0  # the run cache has the original's outputs
    assert "Data and pipelines are up to date." in dvc(repo, "status").stdout


def test_runtime_edits_rerun_nothing(repo):
    check_runtime_edits_rerun_nothing(repo)


def test_experiment_reruns_only_what_depends_on_the_param(repo):
    result = dvc(repo, "exp", "run", "-S", "train.inner_loops=2")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    ran = {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"train@OCI-M", "evaluate@OCI-M", "report"}


def test_queued_sweep_lands_in_the_main_mlflow_db(repo):
    run_sweep(repo)


def test_readme_exp_show_recipe_shows_what_differs_and_the_headline_means(repo):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    recipe = next(line.strip() for line in readme.splitlines()
                  if line.strip().startswith("dvc exp show --only-changed --drop"))
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    make_recipe = makefile.split("\nexps:", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    assert shlex.split(recipe)[1:] == shlex.split(make_recipe.split("/dvc ", 1)[1])  # `make exps` is the same
    shown = dvc(repo, *shlex.split(recipe)[1:], "--csv")
    assert shown.returncode == 0, shown.stderr
    header = next(csv.reader(io.StringIO(shown.stdout)))
    means = {f"mean.{k}_pct" for k in ("source_val_auc", "source_val_eer", "auc", "hter_val", "hter_eer",
                                         "hter_oracle")}
    assert means | {"train.seed", "train.inner_loops"} <= set(header), header  # the sweeps above vary them
    assert "model.backbone" not in header  # the same in every row
    sections = ("data.", "demo.", "extract.", "align.", "manifests.", "model.", "train.", "evaluate.", "tracking.")
    others = [c for c in header if not c.startswith(sections) and c not in means | {"Experiment", "Created"}]
    assert not others, others  # no per-protocol metric, no dependency hash
    assert len(header) <= 14, header


def _drawn_plots(dom: str) -> dict[str, str]:
    """Each plot block of a rendered DVC page (by its div id) -> its markup."""
    blocks = re.split(r'(?=<div id=")', dom)
    return {re.match(r'<div id="([^"]+)"', b).group(1): b for b in blocks if b.startswith("<div id=")}


def _is_drawn(block: str) -> bool:
    """Vega drew an SVG with at least one non-empty line path in it."""
    svg = re.search(r'<svg[^>]*class="marks".*?</svg>', block, re.S)
    return bool(svg and re.search(r'<path[^>]*\bd="M[^"]+', svg.group(0)))


def test_dvc_plots_show_and_diff_render_with_no_network(repo, tmp_path):
    from dvc_render.html import PAGE_HTML

    from helpers.browser import dump_dom

    # the control: DVC's own page (Vega from a CDN) is blank in this browser, as on a cluster
    default = tmp_path / "dvc_default.html"
    default.write_text(PAGE_HTML)
    shown = dvc(repo, "plots", "show", "--html-template", str(default), "-o", str(tmp_path / "cdn"))
    assert shown.returncode == 0, shown.stderr
    blank = _drawn_plots(dump_dom((tmp_path / "cdn/index.html").as_uri()))
    assert "plots_roc_OCI-M_json" in blank and not any(_is_drawn(b) for b in blank.values())

    # the repository's template (.dvc/config): every declared plot is drawn
    declared = {"plots_roc_OCI-M_json", "plots_train_loss_OCI-M_csv", "plots_train_source_val_OCI-M_csv"}
    shown = dvc(repo, "plots", "show", "-o", str(tmp_path / "show"))
    assert shown.returncode == 0, shown.stderr
    plots = _drawn_plots(dump_dom((tmp_path / "show/index.html").as_uri()))
    assert declared <= set(plots) and all(_is_drawn(plots[p]) for p in declared), sorted(plots)

    # and a comparison of two experiments (the queued seeds above): both revisions in each plot
    a, b = sorted(dvc(repo, "exp", "list", "--name-only").stdout.split())[:2]
    diff = dvc(repo, "plots", "diff", a, b, "-o", str(tmp_path / "diff"))
    assert diff.returncode == 0, diff.stderr
    plots = _drawn_plots(dump_dom((tmp_path / "diff/index.html").as_uri()))
    assert declared <= set(plots)
    for name in declared:
        assert _is_drawn(plots[name]) and a in plots[name] and b in plots[name], name


def _garbage(repo, size=1_000_000):
    """One leftover of each kind `mpfas clean` removes, and near each a look-alike it must keep."""
    import os
    import subprocess

    from mlflow.tracking import MlflowClient

    blob = os.urandom(size)
    copy = repo / ".dvc" / "tmp" / "exps" / "tmpabandoned"  # a killed queue worker's workspace copy
    (copy / "models/OCI-M").mkdir(parents=True)
    (copy / "models/OCI-M/last.pt").write_bytes(blob)
    # the copy's best.pt is a hardlink of a cache object the workspace still uses: frees nothing
    os.link(repo / "models/OCI-M/best.pt", copy / "models/OCI-M/best.pt")
    (repo / "models/OLD-P").mkdir()  # a protocol dropped from data.protocols
    (repo / "models/OLD-P/last.pt").write_bytes(blob)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (repo / f"models/OCI-M/.best.pt.{dead.pid}.tmp").write_bytes(blob)  # a killed atomic write
    live = repo / f"models/OCI-M/.best.pt.{os.getpid()}.tmp"  # a write in progress
    live.write_bytes(b"x")
    client = MlflowClient(f"sqlite:///{(repo / 'mlflow.db').as_posix()}")
    experiment = client.get_experiment_by_name("mpfas")
    run = client.create_run(experiment.experiment_id)
    (repo / "artifact.bin").write_bytes(blob)
    client.log_artifact(run.info.run_id, str(repo / "artifact.bin"))
    client.set_terminated(run.info.run_id)
    client.delete_run(run.info.run_id)  # deleted in the UI: its artifacts are garbage
    (repo / "artifact.bin").write_bytes(blob[::-1])
    assert dvc(repo, "add", "artifact.bin").returncode == 0  # a cache object nothing will reference
    (repo / "artifact.bin.dvc").unlink()
    (repo / "artifact.bin").unlink()
    return {"blob": blob, "copy": copy, "stale": repo / "models/OLD-P",
            "tmp": repo / f"models/OCI-M/.best.pt.{dead.pid}.tmp", "live": live,
            "run": run.info.run_id, "client": client}


def _freed(stdout):
    """`mpfas clean` output: {category: bytes} and the total."""
    out = {}
    for line in stdout.splitlines():
        if " bytes)" in line:
            out[line.split(":")[0]] = int(line.split(" bytes)")[0].rsplit("(", 1)[1])
    return out


def _best_matches_lock(repo):
    import hashlib

    import yaml

    outs = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train@OCI-M"]["outs"]
    md5 = next(o["md5"] for o in outs if o["path"] == "models/OCI-M/best.pt")
    return hashlib.md5((repo / "models/OCI-M/best.pt").read_bytes()).hexdigest() == md5


@pytest.mark.heavy  # about 2 min (experiments applied, push/pull, a resumed training): `make test-all`
def test_clean_frees_leftovers_and_keeps_what_kept_experiments_need(repo):
    """`mpfas clean` on the finished module repo (experiments and a sweep in it): a leftover of each
    kind goes, the bytes are counted per inode, and resume, `dvc exp apply` and predict still work."""
    import hashlib

    from mlflow.exceptions import MlflowException

    from helpers.sweeps import mpfas_cli

    # the default cache holds copies (nothing to relink); a user who opts into hardlinks for
    # disk's sake gets every duplicate relinked
    assert (repo / "models/OCI-M/best.pt").stat().st_nlink == 1
    assert dvc(repo, "config", "--local", "cache.type", "hardlink,symlink,copy").returncode == 0
    size = 1_000_000
    g = _garbage(repo, size)
    kept_best = (repo / "models/OCI-M/best.pt").read_bytes()
    dry = mpfas_cli(repo, "clean", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    would = _freed(dry.stdout)
    assert all(p.exists() for p in (g["copy"], g["stale"], g["tmp"], g["live"]))  # a dry run deletes nothing
    assert g["client"].get_run(g["run"]).info.lifecycle_stage == "deleted"

    done = mpfas_cli(repo, "clean")
    assert done.returncode == 0, done.stderr
    freed = _freed(done.stdout)
    relinked = "duplicates of cached outputs"  # the dry run estimates this one
    assert abs(freed.pop(relinked) - would.pop(relinked)) <= 0.05 * freed["total"] + 100_000, done.stdout
    freed["total"], would["total"] = sum(freed.values()) - freed["total"], sum(would.values()) - would["total"]
    assert freed == would, (dry.stdout, done.stdout)  # the dry run said what would go
    # each blob freed once; the copy's hardlinked best.pt (still the workspace's) is not counted
    for name, n in (("experiment temp copies", 1), ("stale checkpoints", 2), ("MLflow deleted runs", 1)):
        assert n * size <= freed[name] < n * size + 100_000, (name, done.stdout)
    assert freed["DVC cache"] >= size  # also what runs of this module left uncommitted
    md5 = hashlib.md5(g["blob"][::-1]).hexdigest()
    assert not (repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).exists()
    # relinked: the workspace's best.pt and faces are their cache objects again
    assert (repo / "models/OCI-M/best.pt").stat().st_nlink == 2
    assert min(p.stat().st_nlink for p in (repo / "data/faces").rglob("*") if p.is_file()) >= 2
    assert not any(p.exists() for p in (g["copy"], g["stale"], g["tmp"]))
    assert g["live"].exists()  # its writer (this process) is alive
    g["live"].unlink()
    assert (repo / "models/OCI-M/best.pt").read_bytes() == kept_best and (repo / "models/OCI-M/last.pt").is_file()
    with pytest.raises(MlflowException):
        g["client"].get_run(g["run"])
    assert "Data and pipelines are up to date." in dvc(repo, "status").stdout
    again = mpfas_cli(repo, "clean")
    assert _freed(again.stdout)["total"] == 0, again.stdout

    # nothing a kept experiment needs went: last.pt resumes, every experiment applies, predict runs
    before = set(dvc(repo, "exp", "list", "--name-only").stdout.split())
    iterations = load(repo, "metrics/train_OCI-M.json")["iterations"]
    longer = dvc(repo, "exp", "run", "-S", f"train.iterations={iterations + 1}")
    assert longer.returncode == 0, longer.stdout[-3000:] + longer.stderr[-3000:]
    assert load(repo, "metrics/train_OCI-M.json")["resumed_from"] == iterations  # from the kept last.pt
    names = sorted(before) or sorted(set(dvc(repo, "exp", "list", "--name-only").stdout.split()))
    for name in sorted({names[0], names[-1]}):  # two of them: each apply and status costs ~10 s
        applied = dvc(repo, "exp", "apply", name)
        assert applied.returncode == 0, applied.stderr
        assert _best_matches_lock(repo), name  # restored from the cache
        # last.pt and run.json are `cache: false` and git-ignored: no experiment carries them
        assert _changed(repo) <= {"models/OCI-M/last.pt", "models/OCI-M/run.json"}, name
    # a remote gets every object the workspace uses, and gives the linked, read-only best.pt back
    remote = repo.parent / f"{repo.name}-remote"
    assert dvc(repo, "remote", "add", "--local", "-d", "store", str(remote)).returncode == 0
    pushed = dvc(repo, "push")
    assert pushed.returncode == 0, pushed.stderr
    best = repo / "models/OCI-M/best.pt"
    kept_best = best.read_bytes()
    best.unlink()
    shutil.rmtree(repo / ".dvc/cache")
    pulled = dvc(repo, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert best.read_bytes() == kept_best and _best_matches_lock(repo)
    assert _changed(repo) <= {"models/OCI-M/last.pt", "models/OCI-M/run.json"}
    video = next(p for p in sorted((repo / "data/raw").rglob("*")) if p.suffix in {".mov", ".avi", ".mp4"})
    predicted = mpfas_cli(repo, "predict", str(video), "--no-progress")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
