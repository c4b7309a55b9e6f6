"""Follower voices: anything that turns the leader's analysis frames into a voice signal.

A voice is stepped once per control frame (`step`) and rendered in sub-blocks of any size
(`render`, which adds into the caller's buffer). Built-in reference voices need no model;
trained model voices plug into the same interface.
"""

from engine.voices.base import Voice
from engine.voices.factory import build_voice, build_voices

__all__ = ["Voice", "build_voice", "build_voices"]
