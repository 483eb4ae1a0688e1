"""Config layer: validated, frozen model configs and the shipped CPU and VM presets."""

from memmodel.config.load import load_config, load_raw, parse_config, preset_document, preset_names, preset_text
from memmodel.config.model import ModelConfig, PscArray, SideConfig, TlbArray

__all__ = [
    "ModelConfig",
    "PscArray",
    "SideConfig",
    "TlbArray",
    "load_config",
    "load_raw",
    "parse_config",
    "preset_document",
    "preset_names",
    "preset_text",
]
