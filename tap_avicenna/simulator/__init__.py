"""A local HTTP stand-in for the Avicenna Data Export API (tests, benchmarks, demos)."""

from .clock import SimClock
from .config import (
    DataSourceConfig,
    Faults,
    ParticipantConfig,
    QuestionConfig,
    SimulatorConfig,
    StudyConfig,
    SurveyConfig,
    churn_config,
    default_config,
    preset_config,
)
from .server import Simulator

__all__ = [
    "DataSourceConfig",
    "Faults",
    "ParticipantConfig",
    "QuestionConfig",
    "SimClock",
    "Simulator",
    "SimulatorConfig",
    "StudyConfig",
    "SurveyConfig",
    "churn_config",
    "default_config",
    "preset_config",
]
