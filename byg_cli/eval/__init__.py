"""Engines of `byg eval`: GEdit-Bench and the long-tail style benchmark judged with VIEScore, and the video metrics."""
