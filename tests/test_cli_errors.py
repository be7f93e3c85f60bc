"""Every mistake a new user makes on the command line gets its documented exit code and a plain message,
before any model loads where the mistake is knowable then; interrupted runs lose nothing (issue 15)."""

import argparse
import json
import os
import re
import stat

import pytest
import torch

import acdc_compare
from acdc_compare.cli import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_USAGE, build_parser, main


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a folder\n")
    return path


@pytest.fixture(scope="module")
def circuit_file(tmp_path_factory):
    """A real circuit JSON (tiny GPT-2, ACDC)."""
    from conftest import make_tiny, tiny_task

    from acdc_compare import discover
    from acdc_compare.export import save_circuit

    folder = tmp_path_factory.mktemp("circuits")
    return save_circuit(discover(tiny_task(), 0.05, model=make_tiny("gpt2")), folder / "tiny_acdc.json")


def _discover(*extra, out):
    return ["discover", "--task", "ioi", "--threshold", "0.05", "--quiet", "--out", str(out), *extra]


def _read_only_dir(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(folder, os.W_OK):  # root writes anyway
        folder.chmod(0o700)
        pytest.skip("running as root: a read-only folder is still writable")
    return folder


# ----- paths -----------------------------------------------------------------------------------------------
def test_out_under_a_file_is_refused_before_the_model_loads(no_model, a_file, capsys):
    assert main(_discover(out=a_file / "out")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--out {a_file / 'out'} cannot be created: {a_file} is a file" in err


def test_out_that_is_an_existing_file_is_refused(no_model, a_file, capsys):
    assert main(_discover(out=a_file)) == EXIT_USAGE
    assert f"--out {a_file} is an existing file, not a folder" in capsys.readouterr().err


def test_read_only_out_folder_is_refused(no_model, tmp_path, capsys):
    folder = _read_only_dir(tmp_path)
    try:
        assert main(_discover(out=folder / "out")) == EXIT_USAGE
    finally:
        folder.chmod(0o700)
    assert f"no write permission in {folder}" in capsys.readouterr().err


def test_unwritable_journal_is_refused(no_model, a_file, tmp_path, capsys):
    assert main(_discover("--journal", str(a_file / "j.jsonl"), out=tmp_path / "out")) == EXIT_USAGE
    assert f"--journal {a_file / 'j.jsonl'} cannot be created: {a_file} is a file" in capsys.readouterr().err


def _refusing_pseudo_folder():
    """/proc: root's os.access says it is writable, yet no file can be created in it."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here")
    return "/proc"


@pytest.mark.parametrize("flag", ["--out", "--journal"])
def test_out_or_journal_under_proc_is_refused_before_the_model_loads(no_model, flag, tmp_path, capsys):
    target = f"{_refusing_pseudo_folder()}/acdc-out" + ("/j.jsonl" if flag == "--journal" else "")
    argv = _discover(flag, target, out=tmp_path) if flag == "--journal" else _discover(out=target)
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{flag} {target} cannot be written: creating" in err and "choose a folder you can write to" in err
    assert "Errno" not in err


def test_compare_and_report_to_proc_say_what_went_wrong_in_words(circuit_file, capsys):
    proc = _refusing_pseudo_folder()
    assert main(["compare", str(circuit_file), str(circuit_file), "--out", f"{proc}/cmp"]) == EXIT_USAGE
    assert main(["report", str(circuit_file.parent), "--out", f"{proc}/report.html"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--out {proc}/cmp cannot be written" in err and f"--out {proc}/report.html cannot be written" in err
    assert "Errno" not in err


def test_probing_leaves_nothing_behind(tmp_path):
    from acdc_compare.cli.checks import writable_dir, writable_file

    assert writable_dir(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert writable_file(tmp_path / "c" / "j.jsonl", "--journal") == tmp_path / "c" / "j.jsonl"
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_is_told_in_words_not_errno_text(circuit_file, monkeypatch, capsys):
    import errno as errno_codes

    import acdc_compare.draw as draw

    def disk_full(*args, **kwargs):
        raise OSError(errno_codes.ENOSPC, os.strerror(errno_codes.ENOSPC), "/somewhere/x.svg")

    monkeypatch.setattr(draw, "draw_comparison", disk_full)
    assert main(["compare", str(circuit_file), str(circuit_file), "--out", str(circuit_file.parent)]) != EXIT_OK
    err = capsys.readouterr().err
    assert "cannot use /somewhere/x.svg: the disk is full" in err and "Errno" not in err


def test_compare_of_one_circuit_says_it_needs_two(circuit_file, capsys):
    assert main(["compare", str(circuit_file)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "compare needs two circuits" in err and "--reference" in err and "not both" not in err


def test_compare_given_a_folder_says_so(circuit_file, capsys):
    assert main(["compare", str(circuit_file.parent), str(circuit_file)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{circuit_file.parent} is a folder (it holds tiny_acdc.json); give a circuit JSON file" in err


def test_report_to_an_unwritable_path_names_it_not_a_temp_file(circuit_file, a_file, capsys):
    target = a_file / "report.html"
    assert main(["report", str(circuit_file.parent), "--out", str(target)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(target) in err and ".tmp" not in err


def test_atomic_write_errors_name_the_target(a_file):
    from acdc_compare.files import atomic_write

    with pytest.raises(NotADirectoryError) as caught:
        atomic_write(a_file / "x.json", b"{}")
    assert caught.value.filename == str(a_file / "x.json")


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_are_written_with_the_users_umask(tmp_path, umask, mode):
    from acdc_compare.files import atomic_write

    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "c.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == mode
    (tmp_path / "c.json").chmod(0o640)
    atomic_write(tmp_path / "c.json", b"{}")  # an existing file keeps its mode
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o640


def test_report_on_a_folder_with_a_corrupt_circuit_reports_it(circuit_file, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "good.json").write_text(circuit_file.read_text())
    (folder / "broken.json").write_text(circuit_file.read_text()[:300])  # cut short
    (folder / "sweep.json").write_text(json.dumps({"task": "ioi", "rows": []}))  # not a circuit: no complaint
    assert main(["report", str(folder)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "broken.json" in err and "could not be read" in err and "sweep.json" not in err
    html = (folder / "report.html").read_text()
    assert "good.json" in html and "Unreadable circuit files" in html


# ----- models and devices ----------------------------------------------------------------------------------
def test_garbage_gguf_is_a_model_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACDC_COMPARE_CACHE", str(tmp_path / "cache"))
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"\x00not a model at all" * 50)
    assert main(_discover("--model", str(garbage), out=tmp_path / "out")) == EXIT_MODEL
    assert "is not a GGUF file" in capsys.readouterr().err


def test_truncated_gguf_is_a_model_error(tmp_path, monkeypatch, capsys):
    from acdc_compare.backends.gguf import default_gguf_path

    monkeypatch.setenv("ACDC_COMPARE_CACHE", str(tmp_path / "cache"))
    truncated = tmp_path / "truncated.gguf"
    with default_gguf_path().open("rb") as f:
        truncated.write_bytes(f.read(100_000))
    assert main(_discover("--model", str(truncated), out=tmp_path / "out")) == EXIT_MODEL
    assert "could not be read as a GGUF file" in capsys.readouterr().err


def test_unknown_hub_id_offline_fails_fast_without_booting(tmp_path, monkeypatch, capsys):
    from huggingface_hub import HfApi
    from transformer_lens.model_bridge import TransformerBridge

    def unreachable(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    def boot(*args, **kwargs):
        raise AssertionError("booted (transformers would retry the hub for ~40 s)")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "model_info", unreachable)
    monkeypatch.setattr(TransformerBridge, "boot_transformers", boot)
    assert main(_discover("--model", "no-such-org/no-such-model", out=tmp_path / "out")) == EXIT_MODEL
    err = capsys.readouterr().err
    assert "'no-such-org/no-such-model': it is not in the local Hugging Face cache" in err
    assert "ConnectionError" in err and "smollm2-135m" in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(_discover("--model", "no-such-org/no-such-model", out=tmp_path / "out")) == EXIT_MODEL
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_cuda_on_a_cpu_only_torch_says_so(no_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(_discover("--device", "cuda", out=tmp_path / "out")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "device 'cuda' cannot be used" in err and "--device cpu" in err and "model" not in err


@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_silences_the_weight_loading_bar(monkeypatch, tmp_path, quiet):
    from transformers.utils import logging as hf_logging

    import acdc_compare.cli.discover as discover_cli

    seen = []
    monkeypatch.setattr(discover_cli, "run", lambda args: seen.append(hf_logging.is_progress_bar_enabled()) or 0)
    assert hf_logging.is_progress_bar_enabled()
    argv = ["discover", "--out", str(tmp_path)] + (["--quiet"] if quiet else [])
    assert main(argv) == EXIT_OK
    assert seen == [not quiet] and hf_logging.is_progress_bar_enabled()  # restored afterwards


# ----- numbers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["discover", "--threshold"], ["demo", "--threshold"]])
@pytest.mark.parametrize("value", ["nan", "-1"])
def test_bad_threshold_is_refused_before_the_model_loads(no_model, tmp_path, command, value, capsys):
    assert main([*command, value, "--quiet", "--out", str(tmp_path)]) == EXIT_USAGE
    assert f"threshold must be a finite number >= 0, got {float(value)!r}" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["eap", "eap-ig"])
def test_a_negative_eap_score_threshold_is_refused_before_the_model_loads(no_model, tmp_path, method, capsys):
    argv = ["discover", "--method", method, "--threshold", "-1", "--metric", "logit_diff", "--quiet",
            "--out", str(tmp_path)]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "threshold -1.0 is negative" in err and "would keep every edge" in err and "--top-n" in err


@pytest.mark.parametrize("argv", [["discover", "--method", "eap", "--top-n", "5"],
                                  ["sweep", "--method", "eap", "--thresholds", "0.1"],
                                  ["curve", "--scores", "eap"]])
def test_eap_under_kl_is_refused_before_the_model_loads(no_model, tmp_path, argv, capsys):
    assert main([*argv, "--metric", "kl", "--quiet", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "EAP cannot rank edges under the KL metric" in capsys.readouterr().err


def test_a_sweep_spec_of_eap_under_kl_is_refused(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('tasks = ["ioi"]\nmethods = ["eap"]\nthresholds = [0.1]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == EXIT_USAGE
    assert "methods lists eap with metric 'kl'" in capsys.readouterr().err


def test_too_many_prompts_are_refused_naming_the_size_that_fits(tiny_dir, tmp_path, monkeypatch, capsys):
    import acdc_compare.algorithms.problem as problem_module
    from acdc_compare.api import get_model
    from acdc_compare.backends import make_patcher

    budget = 20 << 20
    monkeypatch.setattr(problem_module, "available_memory", lambda device: budget)
    assert main(["discover", "--model", str(tiny_dir), "--task", "ioi-acdc", "--n-prompts", "3000",
                 "--method", "eap-ig", "--top-n", "5", "--quiet", "--out", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "3000 prompts of" in err and "only 21.0 MB is available" in err
    fits = int(re.search(r"--n-prompts (\d+)", err).group(1))
    seq_len = int(re.search(r"prompts of (\d+) tokens", err).group(1))
    patcher = make_patcher(get_model(str(tiny_dir)))
    problem_module.check_fits(patcher, fits, seq_len, grad=True)  # the size named fits EAP-IG's run ...
    with pytest.raises(problem_module.MemoryBudgetError):
        problem_module.check_fits(patcher, fits + 1, seq_len, grad=True)  # ... and is the largest that does


def test_a_prompts_file_is_sized_by_its_rows_not_by_n_prompts(tiny_dir, tmp_path, monkeypatch, capsys):
    """--n-prompts 3000 on a 3-row file: the memory check counts the 3 rows, and a note says only 3 exist."""
    import acdc_compare.algorithms.problem as problem_module

    monkeypatch.setattr(problem_module, "available_memory", lambda device: 20 << 20)
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps(dict(zip(["prompt", "corrupted", "answer", "wrong answer"], r))) + "\n"
                            for r in IOI_ROWS))
    assert main(["discover", "--model", str(tiny_dir), "--task", str(path), "--n-prompts", "3000",
                 "--method", "eap-ig", "--top-n", "5", "--quiet", "--out", str(tmp_path / "out")]) == EXIT_OK
    assert "note: --n-prompts 3000, but" in capsys.readouterr().err


def test_sweep_reference_on_a_non_gpt2_graph_is_refused_before_any_threshold(tiny_dir, tmp_path, monkeypatch,
                                                                             capsys):
    import acdc_compare.algorithms.registry as registry
    import acdc_compare.api as api

    def no_run(*args, **kwargs):
        raise AssertionError("a threshold ran before the reference was checked")

    monkeypatch.setattr(registry, "run", no_run)
    monkeypatch.setattr(api, "run", no_run)  # the sweep runs each threshold through api.run_scaled
    assert main(["sweep", "--model", str(tiny_dir), "--task", "ioi", "--n-prompts", "2", "--method", "eap-ig",
                 "--thresholds", "0.1", "0.2", "--reference", "ioi", "--quiet", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "GPT-2" in capsys.readouterr().err


# ----- long runs, journals, Ctrl-C -------------------------------------------------------------------------
def test_ctrl_c_names_the_default_journal_and_the_rerun_resumes(tiny_dir, tmp_path, monkeypatch, capsys):
    import acdc_compare.algorithms.acdc as acdc_module
    from acdc_compare.export import load_circuit

    out = tmp_path / "out"
    argv = ["discover", "--model", str(tiny_dir), "--task", "ioi", "--n-prompts", "2", "--threshold", "0.05",
            "--quiet", "--out", str(out)]
    journal = out / "ioi_acdc.journal.jsonl"
    real_write = acdc_module.JournalWriter.write

    def write_then_interrupt(self, decision):
        if self.n_written == 6:
            raise KeyboardInterrupt
        real_write(self, decision)

    monkeypatch.setattr(acdc_module.JournalWriter, "write", write_then_interrupt)
    assert main(argv) == EXIT_INTERRUPTED == 130  # 128 + SIGINT, as a shell reports Ctrl-C
    err = capsys.readouterr().err
    assert f"the decisions made so far are saved in {journal}" in err
    assert "run the same command again to resume from there: acdc-compare discover --model" in err
    assert len(journal.read_text().splitlines()) == 1 + 6
    monkeypatch.setattr(acdc_module.JournalWriter, "write", real_write)

    assert main(argv) == EXIT_OK
    assert f"resuming: 6 decisions from {journal}" in capsys.readouterr().out
    resumed = load_circuit(out / "ioi_acdc.json")
    assert resumed.settings["resumed_decisions"] == 6 and resumed.settings["complete"]
    assert not journal.exists()  # the saved circuit holds every decision
    assert main([*argv[:-1], str(tmp_path / "fresh")]) == EXIT_OK
    assert "resuming" not in capsys.readouterr().out
    fresh = load_circuit(tmp_path / "fresh" / "ioi_acdc.json")
    assert fresh.settings["resumed_decisions"] == 0
    assert torch.equal(resumed.kept, fresh.kept)


def test_ctrl_c_without_a_journal_says_nothing_was_saved(tiny_dir, tmp_path, monkeypatch, capsys):
    import acdc_compare.algorithms.eap as eap_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(eap_module, "eap_ig_scores", interrupted)
    assert main(["discover", "--model", str(tiny_dir), "--task", "ioi", "--n-prompts", "2", "--method", "eap-ig",
                 "--top-n", "5", "--quiet", "--out", str(tmp_path)]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "interrupted; nothing of this run was saved" in err and "resume" not in err


def test_a_long_exact_run_on_cpu_warns_with_its_estimate(tiny_dir, tmp_path, monkeypatch, capsys):
    import acdc_compare.cli.discover as cli

    monkeypatch.setattr(cli, "LONG_RUN_S", 0.0)
    argv = ["discover", "--model", str(tiny_dir), "--task", "ioi", "--n-prompts", "2", "--threshold", "0.05",
            "--device", "cpu", "--quiet", "--out", str(tmp_path)]
    assert main([*argv, "--max-tests", "2"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "warning: exact ACDC tests up to 2 edges one forward each: about" in err
    assert "--method hybrid --k 250" in err and f"journalled to {tmp_path / 'ioi_acdc.journal.jsonl'}" in err
    assert (tmp_path / "ioi_acdc.journal.jsonl").exists()  # a partial result keeps its journal


def test_a_hybrid_k_above_the_edge_count_is_clamped_and_its_exact_run_estimated(tiny_dir, tmp_path, monkeypatch,
                                                                              capsys):
    import acdc_compare.algorithms.acdc as acdc
    import acdc_compare.cli.discover as cli

    monkeypatch.setattr(cli, "LONG_RUN_S", 50.0)
    monkeypatch.setattr(acdc, "estimated_seconds", lambda problem, n_tests: float(n_tests))  # 1 s an edge
    argv = ["discover", "--model", str(tiny_dir), "--task", "ioi", "--n-prompts", "2", "--threshold", "0.05",
            "--device", "cpu", "--method", "hybrid", "--steps", "1", "--quiet", "--out", str(tmp_path)]
    assert main([*argv, "--k", "5"]) == EXIT_OK  # a few candidates: no estimate, no note
    err = capsys.readouterr().err
    assert "exact ACDC tests" not in err and "note: --k" not in err
    assert main([*argv, "--k", "100000000"]) == EXIT_OK
    err = " ".join(capsys.readouterr().err.split())
    n_edges = json.loads((tmp_path / "ioi_hybrid.json").read_text())["n_edges"]
    assert f"note: --k 100,000,000 is more than this graph's {n_edges:,} edges; using --k {n_edges:,}" in err
    assert "runs exact ACDC over all edges" in err
    assert f"warning: exact ACDC tests up to {n_edges:,} edges one forward each: about" in err
    assert "a smaller --k, e.g. 250" in err


def test_curve_of_a_partly_scored_circuit_says_where_its_ranking_ends(tiny_dir, tmp_path, capsys):
    from acdc_compare.circuit import Circuit
    from acdc_compare.export import load_circuit, save_circuit

    common = ["--model", str(tiny_dir), "--task", "ioi", "--n-prompts", "2", "--quiet"]
    assert main(["discover", *common, "--method", "eap-ig", "--steps", "1", "--top-n", "5",
                 "--out", str(tmp_path)]) == EXIT_OK
    c = load_circuit(tmp_path / "ioi_eap-ig.json")
    scores = c.scores.clone()
    scores[scores.abs().argsort()[: c.n_edges - 10]] = float("nan")  # as a hybrid: 10 edges tested
    hybrid = save_circuit(Circuit(c.graph, c.kept, scores, metrics=c.metrics, settings=c.settings),
                          tmp_path / "hybrid.json")
    capsys.readouterr()
    assert main(["curve", *common, "--scores", str(hybrid), "--fractions", "0.5", "1.0",
                 "--out", str(tmp_path / "curve")]) == EXIT_OK
    captured = capsys.readouterr()
    assert f"ranks only 10 of {c.n_edges:,} edges" in captured.err and "read it only up to there" in captured.err
    assert "(past the scored edges: unranked)" in captured.out
    summary = json.loads((tmp_path / "curve" / "ioi_curve.json").read_text())
    assert summary["curves"][str(hybrid)]["n_scored"] == 10


# ----- tasks -----------------------------------------------------------------------------------------------
IOI_ROWS = [
    ("When Mary and John went to the store, John gave a drink to",
     "When Anna and Paul went to the store, Paul gave a drink to", " Mary", " John"),
    ("When Tom and Sarah went to the park, Sarah gave a ball to",
     "When Mark and Kate went to the park, Kate gave a ball to", " Tom", " Sarah"),
    ("Then, Lisa and David had lunch, and David handed a cup to",
     "Then, Emma and James had lunch, and James handed a cup to", " Lisa", " David"),
]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_task_from_a_prompts_file(tiny_dir, tmp_path, suffix, capsys):
    from acdc_compare.export import load_circuit

    path = tmp_path / f"my_ioi{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(["prompt", "corrupted", "answer", "wrong answer"], r))) + "\n"
                                for r in IOI_ROWS))
    else:
        path.write_text("prompt,corrupted,answer,wrong_answer\n" + "".join(f'"{a}","{b}",{c},{d}\n'
                                                                         for a, b, c, d in IOI_ROWS))
    out = tmp_path / "out"
    assert main(["discover", "--model", str(tiny_dir), "--task", str(path), "--method", "eap-ig", "--top-n", "5",
                 "--quiet", "--out", str(out)]) == EXIT_OK
    circuit = load_circuit(out / "my_ioi_eap-ig.json")
    assert circuit.settings["task"] == "my_ioi" and circuit.settings["n_prompts"] == 3
    captured = capsys.readouterr()
    # the task's numbers before the search, and a note that --n-prompts 16 (the default) found only 3 rows
    assert re.search(r"task my_ioi on the model: 3 prompts, accuracy \d+% .*logit difference -?\d+\.\d\d, "
                     r"KL\(clean \|\| corrupted\) \d+\.\d{3} nats", captured.out)
    assert f"note: --n-prompts 16, but {path} holds only 3 prompts; using all 3" in captured.err


def test_tasks_evaluates_a_prompts_file_beside_registered_tasks(tiny_dir, tmp_path, capsys):
    path = tmp_path / "capitals.jsonl"
    path.write_text("".join(json.dumps(dict(zip(["prompt", "corrupted", "answer", "wrong answer"], r))) + "\n"
                            for r in IOI_ROWS))
    assert main(["tasks", "--model", str(tiny_dir), "--names", str(path), "ioi", "--n", "2", "--quiet"]) == EXIT_OK
    captured = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in captured.out.splitlines() if line.split()}
    assert rows["capitals"][1] == "2" and rows["capitals"][-3] == "-"  # 2 of its 3 rows; no corruption kind
    assert "ioi" in rows and "note" not in captured.err
    assert main(["tasks", "--model", str(tiny_dir), "--names", str(path), "--n", "5", "--quiet"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "capitals    " in captured.out and "note: --n 5, but capitals holds only 3 prompts" in captured.err


def test_tasks_refuses_a_bad_prompts_file_before_the_model_loads(no_model, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,corrupted,answer\nx,,z\n")
    assert main(["tasks", "--names", str(path)]) == EXIT_USAGE
    assert f"{path}, line 2: column 'corrupted' must be a non-empty string" in capsys.readouterr().err


def test_a_bad_prompts_file_is_refused_before_the_model_loads(no_model, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "a", "corrupted": "b", "wrong answer": " c"}) + "\n")
    assert main(_discover("--task", str(path), out=tmp_path / "out")) == EXIT_USAGE
    assert f"{path}, line 1: no column 'answer'" in capsys.readouterr().err


def test_tasks_list_runs_no_model(no_model, capsys):
    from acdc_compare.tasks.registry import TASKS

    assert main(["tasks", "--list"]) == EXIT_OK
    printed = capsys.readouterr().out
    for spec in TASKS.values():
        assert f"{spec.name}: {spec.description}" in printed
    assert printed.count("    e.g. ") == len(TASKS)
    assert "prompt, corrupted, answer, wrong answer" in printed


# ----- help ------------------------------------------------------------------------------------------------
def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_has_help_and_shows_its_default():
    for name, sub in _subparsers(build_parser()).items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help"
            shown = formatter._get_help_string(action)
            assert "%(default)" in shown or "(default: " in shown, f"{name} {action.option_strings[0]}: {shown}"


def test_threshold_help_states_its_units():
    subs = _subparsers(build_parser())
    help_of = {name: next(a.help for a in subs[name]._actions if "--threshold" in a.option_strings)
               for name in ("discover", "demo")}
    assert "absolute, in the metric's own units" in help_of["discover"]
    assert "RELATIVE: a fraction of each task's metric gap" in help_of["demo"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"acdc-compare {acdc_compare.__version__}"


def test_max_memory_bounds_the_run_and_nonsense_is_refused_before_the_model_loads(tiny_dir, tmp_path, capsys):
    base = ["discover", "--model", str(tiny_dir), "--task", "ioi-acdc", "--method", "eap-ig", "--top-n", "5",
            "--quiet", "--out", str(tmp_path)]
    assert main([*base, "--max-memory", "lots"]) == EXIT_USAGE
    assert "--max-memory: a memory size must be" in capsys.readouterr().err
    assert main([*base, "--n-prompts", "3000", "--max-memory", "20MB"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "3000 prompts of" in err and "only 20.0 MB is the --max-memory budget" in err
    assert re.search(r"use at most \d+ prompts \(--n-prompts \d+\)", err)


def test_a_prompts_file_where_some_rows_lack_a_wrong_answer_is_named_before_the_model_loads(no_model, tmp_path,
                                                                                           capsys):
    path = tmp_path / "partial.jsonl"
    rows = [{"prompt": "The capital of France is", "corrupted": "The capital of Italy is", "answer": " Paris",
             "wrong answer": " Rome"},
            {"prompt": "The capital of Japan is", "corrupted": "The capital of Egypt is", "answer": " Tokyo"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(_discover("--task", str(path), "--metric", "logit_diff", out=tmp_path / "out")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--metric logit_diff needs a wrong answer on every row" in err and "(line 2)" in err
    with pytest.raises(AssertionError, match="a model was loaded"):
        main(_discover("--task", str(path), out=tmp_path / "out"))
    warned = capsys.readouterr().err
    assert "warning:" in warned and "1 of 2 rows give no wrong answer (line 2)" in warned


def test_a_hybrid_k_below_1_is_refused_before_the_model_loads(no_model, tmp_path, capsys):
    from acdc_compare.api import discover

    assert main(["discover", "--method", "hybrid", "--k", "0", "--threshold", "0.01", "--quiet",
                 "--out", str(tmp_path)]) == EXIT_USAGE
    assert "--k must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        discover("ioi", 0.01, method="hybrid", k=0)


def test_a_circuit_whose_kept_edges_never_reach_the_logits_is_warned_about(capsys):
    from acdc_compare.circuit import Circuit
    from acdc_compare.cli.discover import _warn_if_empty
    from acdc_compare.graph import Graph, GraphConfig

    graph = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=4))
    dangling = Circuit.from_edge_names(graph, ["input->a0.h1<q>", "a0.h1<q>", "a0.h1->a2.h2<q>"])
    _warn_if_empty(dangling, None, None)
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: none of the 3 kept edges lies on an input->logits path" in err and "--top-n" in err
    _warn_if_empty(Circuit.from_edge_names(graph, ["input->a0.h1<q>", "a0.h1<q>", "a0.h1->m1", "m1->logits"]),
                   None, None)
    assert capsys.readouterr().err == ""


def test_a_corruption_that_barely_moves_the_metric_is_warned_about_naming_the_better_one(tiny_dir, tmp_path,
                                                                                        monkeypatch, capsys):
    import acdc_compare.cli.discover as cli
    from acdc_compare.api import prepare

    argv = ["discover", "--model", str(tiny_dir), "--task", "pet-last", "--n-prompts", "2", "--method", "eap-ig",
            "--top-n", "5", "--quiet", "--out", str(tmp_path)]
    gaps = {c: (lambda ends: ends[1] - ends[0])(prepare("pet-last", model=str(tiny_dir), n_prompts=2,
                                                         corruption=c, check=False).metric_ends)
            for c in ("meaning", "answers")}
    monkeypatch.setattr(cli, "WEAK_CORRUPTION_SHARE", 2 * gaps["meaning"] / gaps["answers"])  # meaning: "tiny"
    assert main(argv) == EXIT_OK
    err = " ".join(capsys.readouterr().err.split())
    assert (f"warning: under --corruption meaning removing every edge moves the metric by only "
            f"{gaps['meaning']:.4g}") in err
    assert f"against {gaps['answers']:.4g} under --corruption answers" in err and "use --corruption answers" in err
    assert main([*argv, "--corruption", "answers"]) == EXIT_OK  # the better one: no warning
    assert "under --corruption" not in capsys.readouterr().err
    monkeypatch.setattr(cli, "WEAK_CORRUPTION_SHARE", 0.5 * gaps["meaning"] / gaps["answers"])
    assert main(argv) == EXIT_OK
    assert "under --corruption" not in capsys.readouterr().err


def test_report_lists_every_file_it_wrote_and_shows_settings_as_short_numbers(circuit_file, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    record = json.loads(circuit_file.read_text())
    record["settings"]["threshold"] = 0.0040101220275755465
    for name in ("a", "b"):
        (folder / f"{name}.json").write_text(json.dumps(record))
    assert main(["report", str(folder)]) == EXIT_OK
    out = capsys.readouterr().out
    listed = out.split("wrote:")[1].split()
    assert set(listed) == {str(folder / n) for n in ("a.png", "b.png", "a_vs_b.png", "report.html")}
    html = (folder / "report.html").read_text()
    assert "0.0040101220275755465" not in html and "0.00401" in html
