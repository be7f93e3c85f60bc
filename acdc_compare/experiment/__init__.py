"""The research experiment as one call (`run_experiment`): discover IOI's circuit and the comparison tasks',
compare them with each other and with IOI's head roles, run the order-vs-meaning control, and write every
artefact to a folder. Used by `acdc-compare demo` (and `make demo`); prints nothing.

config: the settings and results; stages: each step as a timed function; layout: the report's sections;
conclusion: the answer right under the report's title, derived from the result; run: the orchestration;
study: the whole comparison study (`run_study`, `acdc-compare study`), resumable."""

from acdc_compare.experiment.config import CURVE_FRACTIONS, ExperimentConfig, ExperimentResult, TaskRun
from acdc_compare.experiment.layout import (
    MOVER_COLUMNS,
    candidates_description,
    mover_rows,
    prompts_description,
    ranking_description,
    stage_table,
    tested_description,
)
from acdc_compare.experiment.run import run_experiment
from acdc_compare.experiment.stages import StageClock, held_out_faithfulness, task_threshold
from acdc_compare.experiment.study import StudyConfig, StudyResult, run_study

__all__ = ["CURVE_FRACTIONS", "MOVER_COLUMNS", "ExperimentConfig", "ExperimentResult", "StageClock",
           "StudyConfig", "StudyResult", "TaskRun", "candidates_description", "held_out_faithfulness",
           "mover_rows", "prompts_description", "ranking_description", "run_experiment", "run_study",
           "stage_table", "task_threshold", "tested_description"]
