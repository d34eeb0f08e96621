"""Objectives as code: OpenSLO v1 ``SLO`` documents over promise outcomes (docs/objectives.md).

``model.py`` holds the typed objectives (pure); ``load.py`` reads and checks the YAML file.
"""
