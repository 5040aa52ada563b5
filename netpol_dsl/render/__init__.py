"""Rendering: the one ruamel.yaml configuration, and text reports."""
