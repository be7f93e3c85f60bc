"""Circuit diagrams with Graphviz (pygraphviz, in-process; no `dot` command needed).

Layout: input at the bottom, logits at the top (as in the viewer), one rank per layer's heads and one per
layer's MLP (the MLP reads its layer's heads), a grey layer label at the left of each rank; ranks with no
node are left out.
Heads of a layer sit side by side (dot orders them to limit crossings). Residual edges are told apart by colour and style
(q solid blue, k dashed green, v dotted red, MLP input purple, logits dark grey); edge width grows with
|score| (scaled to the largest finite |score| drawn, clipped). Direct edges join a head to itself, so they
are not drawn: a head's node carries them in its `direct` attribute and tooltip. Under grouped-query
attention a k/v edge is drawn into the heads of its group that feed something (all of them if none does).

Bounded drawing time: dot's layout time grows steeply with the number of arrows (measured in
benchmarks/bench_draw.py), so a circuit with more than `max_edges` arrows (default `MAX_DRAWN_EDGES`) is
drawn as its top edges by |score|: the longest top run that, pruned to input-to-logits paths again, makes at
most `max_edges` arrows. The legend says how many of how many are drawn (`plan_drawing(...).note`). Drawings over `FAST_LAYOUT_ARROWS` arrows
use dot with fewer network-simplex and crossing-minimisation iterations. Every output format of one drawing
shares one layout (`path` may be a list of paths).

Every circuit edge in the DOT source has `key` = its edge name and `class="circuit"`; the layer labels
and their invisible chain have `class="layout"`. pygraphviz is imported inside the functions only.

`plan` decides what a drawing shows, `styles` holds its colours and widths, `render` builds and writes the
Graphviz graph, `legend` the legends; `circuit_figure` draws one circuit, `comparison_figure` two.
"""

from acdc_compare.draw.circuit_figure import draw_circuit
from acdc_compare.draw.comparison_figure import draw_comparison
from acdc_compare.draw.legend import edge_counts
from acdc_compare.draw.plan import MAX_DRAWN_EDGES, DrawingPlan, DrawnEdge, drawn_edges, nodes_of, plan_drawing
from acdc_compare.draw.render import FAST_LAYOUT_ARROWS
from acdc_compare.draw.styles import COMPARISON_COLORS, EDGE_STYLES, ROLE_COLORS, role_palette

__all__ = ["COMPARISON_COLORS", "EDGE_STYLES", "FAST_LAYOUT_ARROWS", "MAX_DRAWN_EDGES", "ROLE_COLORS", "DrawingPlan",
           "DrawnEdge", "draw_circuit", "draw_comparison", "drawn_edges", "edge_counts", "nodes_of", "plan_drawing",
           "role_palette"]
