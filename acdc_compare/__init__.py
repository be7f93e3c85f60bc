"""acdc_compare: automated circuit discovery (ACDC, EAP, EAP-IG) for TransformerLens models, with the found
circuits compared side by side with known ones (IOI's name-mover circuit, Greater-Than).

    from acdc_compare import discover
    circuit = discover("ioi", threshold=0.02, method="hybrid", k=250)
"""

from acdc_compare.circuit import Circuit
from acdc_compare.discover import discover, prepare, run_method, sweep
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.model import DEFAULT_MODEL, ModelLoadError, load_model, tiny_model
from acdc_compare.tasks.base import Task, TaskError
from acdc_compare.types import Ablation, Method, Metric, ModelConfig

__all__ = [
    "Ablation", "Circuit", "DEFAULT_MODEL", "Graph", "GraphConfig", "Method", "Metric", "ModelConfig",
    "ModelLoadError", "Task", "TaskError", "discover", "load_model", "prepare", "run_method", "sweep",
    "tiny_model",
]
__version__ = "0.1.0"
