"""Noctis: the Earth-observation platform's workflows.

Importing ``noctis`` connects to nothing and reads no settings.
"""

__version__ = "0.1.0"
