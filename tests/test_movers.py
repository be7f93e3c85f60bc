"""Circuit movers: the three-part rule on a hand-built circuit and hand-set scores, and the overlap with IOI's."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.movers import MoverOverlap, circuit_movers
from acdc_compare.role_tables import role_table
from acdc_compare.roles import HeadScores, MoverSet, RoleThresholds, assign_roles, compare_movers, movers_of

GRAPH = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=4))


def _scores(mover: dict[str, float], attention: dict[str, float], n_mover_prompts: int = 8) -> HeadScores:
    m = torch.zeros(3, 4, dtype=torch.float64)
    a = torch.zeros(3, 4, dtype=torch.float64)
    for table, values in ((m, mover), (a, attention)):
        for head, v in values.items():
            layer, h = (int(x) for x in head[1:].split(".h"))
            table[layer, h] = v
    z = torch.zeros_like(m)
    return HeadScores(task_name="t", previous_token=z, duplicate_token=z, induction=z, mover=m,
                      s_inhibition=torch.full_like(m, float("nan")), answer_attention=a, direct_logit=z,
                      n_mover_prompts=n_mover_prompts)


def _circuit() -> Circuit:
    # a2.h1 and a1.h3 are on input->logits paths; a2.h2 sends to the logits but reads nothing kept.
    return Circuit.from_edge_names(GRAPH, [
        "input->a1.h3<v>", "a1.h3<v>", "a1.h3->logits",
        "input->a2.h1<q>", "a2.h1<q>", "a1.h3->a2.h1<v>", "a2.h1<v>", "a2.h1->logits",
        "a2.h2->logits",
    ])


def test_a_mover_needs_a_path_attention_and_a_raised_answer() -> None:
    circuit = _circuit()
    assert circuit.functional_heads() == {"a1.h3", "a2.h1"}
    scores = _scores(mover={"a2.h1": 2.0, "a1.h3": 1.0, "a2.h2": 3.0, "a0.h0": 2.5},
                     attention={"a2.h1": 0.6, "a1.h3": 0.5, "a2.h2": 0.9, "a0.h0": 0.9})
    assert circuit_movers(circuit, scores) == MoverSet("t", ("a2.h1", "a1.h3"))
    # a1.h3 falls below the attention floor; then below the fraction of the best mover score (a2.h2's 3.0):
    # near enough to be borderline both times
    assert circuit_movers(circuit, scores, RoleThresholds(min_attention=0.55)) == MoverSet("t", ("a2.h1",), ("a1.h3",))
    assert circuit_movers(circuit, scores, RoleThresholds(mover_fraction=0.5)) == MoverSet("t", ("a2.h1",), ("a1.h3",))
    assert circuit_movers(circuit, scores, RoleThresholds(mover_fraction=0.9)) == MoverSet("t", (), ("a2.h1",))
    negative = _scores(mover={"a2.h1": -2.0, "a1.h3": 1.0}, attention={"a2.h1": 0.6, "a1.h3": 0.5})
    assert circuit_movers(circuit, negative, RoleThresholds(mover_fraction=0.6)).heads == ("a1.h3",)


def test_one_name_mover_rule_everywhere() -> None:
    """Issue 22 row 7: a23.h7-like heads missed IOI's name-mover role only because the strongest negative mover
    set the cut-off, while another section counted them: now the role, the circuit movers and the cross-task
    comparison take their movers from one rule, and near misses are shown as borderline."""
    ioi = _scores(mover={"a2.h0": 0.694, "a2.h2": 0.542, "a2.h1": 0.518, "a2.h3": 0.40, "a1.h0": 0.12,
                         "a2.h2": 0.542, "a1.h3": -1.44},
                  attention={"a2.h0": 0.64, "a2.h2": 0.41, "a2.h1": 0.59, "a2.h3": 0.5, "a1.h0": 0.4, "a1.h3": 0.8})
    ioi = dataclasses.replace(ioi, task_name="ioi")
    found = movers_of(ioi)
    assert found.heads == ("a2.h0", "a2.h2", "a2.h1", "a2.h3") and found.borderline == ("a1.h0",)
    roles = assign_roles(ioi)
    assert {h for h, r in roles.items() if r == "name mover"} == set(found.heads)
    assert roles["a1.h3"] == "negative name mover"
    everything = Circuit.from_edge_names(GRAPH, [n for n in GRAPH.edge_names])
    assert circuit_movers(everything, ioi) == found
    pets = dataclasses.replace(ioi, task_name="pets")
    assert compare_movers(ioi, pets).ioi_name_movers == found
    rows = role_table(ioi, {h: str(r) for h, r in roles.items()}, name_movers=found)
    assert [r["role"] for r in rows if r["head"] == "a1.h0"] == ["name mover (borderline)"]


def test_no_movers_where_the_answer_is_never_in_the_prompt() -> None:
    scores = _scores(mover={"a2.h1": 2.0}, attention={"a2.h1": 0.6}, n_mover_prompts=0)
    assert circuit_movers(_circuit(), scores) == MoverSet("t")


def test_overlap_with_ioi_against_chance() -> None:
    o = MoverOverlap("pet-last", ("a2.h1", "a1.h3", "a0.h0"), ("a2.h1", "a2.h2"), n_heads=12)
    assert o.shared == ("a2.h1",)
    assert o.chance == pytest.approx(3 * 2 / 12)
    assert "1 shared" in o.verdict() and "2 of its own" in o.verdict()
    assert "none of IOI's" in MoverOverlap("x", ("a0.h1",), ("a2.h1",), 12).verdict()
    assert "no head" in MoverOverlap("x", (), ("a2.h1",), 12).verdict()
    with pytest.raises(ValueError, match="n_heads"):
        MoverOverlap("x", (), (), 0)
