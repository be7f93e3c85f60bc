"""One number formatter (issue 22 row 12): zero up to rounding prints as 0, never "-0" or "7.772e-13"."""

import math

import pytest
import torch

from acdc_compare.fmt import num


@pytest.mark.parametrize("x,kwargs,text", [
    (7.772e-13, {}, "0"), (-0.0, {}, "0"), (-1e-12, {}, "0"), (0.0, {"fixed": 3}, "0.000"),
    (-0.0001, {"fixed": 3}, "0.000"), (-0.4, {"fixed": 3}, "-0.400"), (1.23456, {}, "1.235"),
    (-2.5e-5, {}, "-2.5e-05"), (3e-13, {"scale": 1e-12}, "3e-13"), (math.nan, {}, "n/a"), (None, {}, "n/a"),
    (math.inf, {}, "inf")])
def test_num(x, kwargs, text):
    assert num(x, **kwargs) == text


def test_discover_prints_a_zero_full_kl_as_0_and_no_minus_zero(capsys):
    from acdc_compare.circuit import Circuit
    from acdc_compare.cli.discover import _print_circuit
    from acdc_compare.graph import Graph, GraphConfig

    graph = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2))
    circuit = Circuit(graph, torch.zeros(graph.n_edges, dtype=torch.bool), metrics={
        "full": 7.772e-13, "circuit": 2.0, "empty": 2.0})
    _print_circuit(circuit)
    out = capsys.readouterr().out
    assert "metric full 0, circuit 2, empty 2; normalised faithfulness 0.000" in out
    assert "e-13" not in out and "-0" not in out


def test_one_duration_text_for_every_time_estimate() -> None:
    """Issue 22 row 12: the same exact run was quoted as "hours", "about a day" and a computed estimate; the
    report now states `estimated_seconds` in the words `discover`'s warning uses."""
    from acdc_compare.experiment import ExperimentConfig
    from acdc_compare.experiment.layout import _method_note
    from acdc_compare.fmt import duration

    assert duration(90) == "2 min" and duration(5 * 3600 + 180) == "5 h 3 min"
    note = _method_note(ExperimentConfig(), 26 * 3600.0)
    assert "about 26 h 0 min here" in note and "a day" not in note
    assert "would take" not in _method_note(ExperimentConfig(), float("nan"))


def test_an_empty_circuit_s_faithfulness_is_0_not_minus_0() -> None:
    from acdc_compare.circuit import Circuit
    from acdc_compare.faithfulness import circuit_faithfulness, normalized_faithfulness
    from acdc_compare.graph import Graph, GraphConfig

    graph = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2))
    empty = Circuit(graph, torch.zeros(graph.n_edges, dtype=torch.bool),
                    metrics={"full": 0.0, "circuit": 2.5, "empty": 2.5})  # KL: m(full) < m(empty)
    value = circuit_faithfulness(empty)
    assert value == 0 and math.copysign(1.0, value) == 1.0
    assert str(value) == "0.0" and f"{value:.2f}" == "0.00"
    assert math.copysign(1.0, normalized_faithfulness(-1.0, -3.0, -1.0)) == 1.0
