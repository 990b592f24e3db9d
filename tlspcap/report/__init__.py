"""Renderers: each turns finished results into one output format (they never analyse)."""
