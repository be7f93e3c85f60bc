"""Graphviz's Fontconfig warning about the machine's font setup is dropped from drawings; other native stderr
lines pass (issue #35 finding 8)."""

import os
import subprocess
import sys
from pathlib import Path

from acdc_compare.native_stderr import fontconfig_warnings_dropped


def test_fontconfig_warnings_are_dropped_and_every_other_line_kept(capfd):
    with fontconfig_warnings_dropped():
        os.write(2, b'Fontconfig warning: "/etc/x.conf", line 6: unknown element "reset-dirs"\n')
        os.write(2, b"Error: syntax error in line 3\nFontconfig error: cannot load config\n")
    err = capfd.readouterr().err
    assert "Fontconfig warning" not in err
    assert "Error: syntax error in line 3\n" in err and "Fontconfig error: cannot load config\n" in err


def test_an_exception_in_the_block_still_restores_stderr_and_keeps_its_lines(capfd):
    try:
        with fontconfig_warnings_dropped():
            os.write(2, b"real problem\n")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "real problem\nafter\n"


def test_a_drawing_prints_no_fontconfig_warning(tmp_path):
    script = ("from pathlib import Path\n"
              "from acdc_compare.circuit import Circuit\n"
              "from acdc_compare.cli.output import draw\n"
              "from acdc_compare.graph import Graph, GraphConfig\n"
              "g = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2))\n"
              "c = Circuit.from_edge_names(g, ['input->a0.h1<q>', 'a0.h1<q>', 'a0.h1->m1', 'm1->logits'])\n"
              f"draw(c, Path({str(tmp_path / 'c')!r}), 'c')\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Fontconfig warning" not in done.stderr and (tmp_path / "c.png").is_file()
