"""Porte-Voix shared package: event contracts and the runtime every service uses."""

__version__ = "0.1.0"
