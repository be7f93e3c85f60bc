"""acdc_compare: automated circuit discovery (ACDC, EAP, EAP-IG) for TransformerLens models, with the found
circuits compared side by side with known ones (IOI's name-mover circuit, Greater-Than).

    from acdc_compare import discover
    circuit = discover("ioi", 0.001, threshold_scale="relative", method="hybrid", k=1000, tested=40,
                       functional=True)  # the demo's settings; README's "Using it from Python" has more
"""

from acdc_compare.algorithms.acdc import AcdcOptions
from acdc_compare.algorithms.eap import EapIgOptions, EapOptions
from acdc_compare.algorithms.hybrid import HybridOptions
from acdc_compare.algorithms.registry import ALGORITHMS
from acdc_compare.api import discover, prepare, run_method, sweep
from acdc_compare.backends import DEFAULT_MODEL, ModelLoadError, load_model, tiny_model
from acdc_compare.circuit import Circuit, set_notebook_renderer
from acdc_compare.faithfulness import circuit_faithfulness, normalized_faithfulness
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.tasks.base import Task, TaskError
from acdc_compare.tasks.build import task_from_prompts
from acdc_compare.types import Ablation, Metric, ModelConfig

__all__ = [
    "ALGORITHMS", "Ablation", "AcdcOptions", "Circuit", "DEFAULT_MODEL", "EapIgOptions", "EapOptions", "Graph",
    "GraphConfig", "HybridOptions", "Metric", "ModelConfig", "ModelLoadError", "Task", "TaskError",
    "circuit_faithfulness", "discover", "load_model", "normalized_faithfulness", "prepare", "run_method", "sweep",
    "task_from_prompts", "tiny_model",
]
__version__ = "0.1.0"


def _notebook_html(value: object) -> str:
    """Circuits and comparisons in notebooks: the viewer module is imported on the first display only."""
    from acdc_compare.notebook import to_html

    return to_html(value)


set_notebook_renderer(_notebook_html)
