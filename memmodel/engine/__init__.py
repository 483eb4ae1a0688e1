"""Engine layer: the canonical model (docs/model.md v2) in a compiled C core over named state. No I/O."""

from memmodel.engine.replay import Replay, replay, translations_to_runs
from memmodel.engine.result import COUNTER_NAMES, EXTRA_NAMES, SERIES_NAMES, SimResult, derived_metrics

__all__ = ["COUNTER_NAMES", "EXTRA_NAMES", "SERIES_NAMES", "Replay", "SimResult", "derived_metrics", "replay",
           "translations_to_runs"]
