"""Circuit diagrams with Graphviz (pygraphviz, in-process; no `dot` command needed).

Two levels. The head level (the default for circuits of more than `HEAD_LEVEL_ABOVE` edges on input-to-logits
paths, `level="heads"`) draws the heads and MLPs on those paths, filled by role and sized by importance, with
the kept edges between two of them merged into one arrow (q, k and v together) whose width is their summed
importance; over `max_nodes` (default `MAX_DRAWN_NODES`) it keeps the most important complete paths, nodes
with a role first (`head_plan`). A comparison at head level draws one panel per circuit, nodes filled in
both / only this circuit, IOI's name movers outlined in both. The edge level (`level="edges"`) draws every
residual edge as an arrow.

Importance everywhere is `Circuit.importance`: a kept edge's place in the circuit's ranking by the evidence
that kept it (ACDC's metric change where ACDC tested it, else the ranking score that chose it), so no
drawing ranks by edge order.

Layout: input at the bottom, logits at the top (as in the viewer), one rank per layer's heads and one per
layer's MLP (the MLP reads its layer's heads), a grey layer label at the left of each rank; ranks with no
node are left out. Residual edges are told apart by colour and style (q solid blue, k dashed green, v dotted
red, MLP input purple, logits dark grey). Direct edges join a head to itself, so they are not drawn: at edge
level a head's node carries them in its `direct` attribute and tooltip. Under grouped-query attention a k/v
edge is drawn into the heads of its group that feed something (all of them if none does).

Bounded drawing time at edge level: dot's layout time grows steeply with the number of arrows (measured in
benchmarks/bench_draw.py), so a circuit with more than `max_edges` arrows (default `MAX_DRAWN_EDGES`) is
drawn as its first-ranked edges: the longest run of the ranking that, pruned to input-to-logits paths again,
makes at most `max_edges` arrows. The legend says how many of how many are drawn. Drawings over
`FAST_LAYOUT_ARROWS` arrows use dot with fewer network-simplex and crossing-minimisation iterations. Every
output format of one drawing shares one layout (`path` may be a list of paths).

Every circuit arrow in the DOT source has `class="circuit"` and a key (the edge name at edge level,
`up->down` at head level); the layer labels and their invisible chain have `class="layout"`. pygraphviz is
imported inside the functions only.

A span circuit (`positions="spans"`) is drawn by `draw_span_circuit` as the IOI paper draws circuits: spans
as columns, layers as rows, a node per head or MLP and span (`span_figure`).

`plan` and `head_plan` decide what a drawing shows, `styles` holds its colours and widths, `render` builds
and writes the Graphviz graph, `legend` the legends; `circuit_figure` draws one circuit, `comparison_figure`
two, `head_figure` both at head level, `span_figure` a span circuit.
"""

from acdc_compare.draw.circuit_figure import draw_circuit, figure_note
from acdc_compare.draw.comparison_figure import draw_comparison
from acdc_compare.draw.head_plan import HEAD_LEVEL_ABOVE, MAX_DRAWN_NODES, DrawLevel, HeadPlan, NodeArrow, plan_heads
from acdc_compare.draw.legend import edge_counts
from acdc_compare.draw.plan import MAX_DRAWN_EDGES, DrawingPlan, DrawnEdge, drawn_edges, nodes_of, plan_drawing
from acdc_compare.draw.render import FAST_LAYOUT_ARROWS
from acdc_compare.draw.span_figure import SpanPlan, draw_span_circuit, plan_spans
from acdc_compare.draw.styles import COMPARISON_COLORS, EDGE_STYLES, ROLE_COLORS, role_palette

__all__ = ["COMPARISON_COLORS", "EDGE_STYLES", "FAST_LAYOUT_ARROWS", "HEAD_LEVEL_ABOVE", "MAX_DRAWN_EDGES",
           "MAX_DRAWN_NODES", "ROLE_COLORS", "DrawLevel", "DrawingPlan", "DrawnEdge", "HeadPlan", "NodeArrow",
           "SpanPlan", "draw_circuit", "draw_comparison", "draw_span_circuit", "drawn_edges", "edge_counts", "figure_note", "nodes_of", "plan_drawing", "plan_heads", "plan_spans",
           "role_palette"]
