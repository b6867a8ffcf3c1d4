"""Simulated organisations for demos, benchmarks and chaos tests: `portevoix simulate`."""

from portevoix.simulation.generator import (
    SimEvent,
    Simulation,
    SimulationConfig,
    SimulationStats,
    simulate,
)
from portevoix.simulation.texts import PROBLEM_RULES, PROBLEMS

__all__ = [
    "PROBLEMS",
    "PROBLEM_RULES",
    "SimEvent",
    "Simulation",
    "SimulationConfig",
    "SimulationStats",
    "simulate",
]
