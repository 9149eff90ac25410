"""Placeholder: the FakeActionstep pytest plugin."""
