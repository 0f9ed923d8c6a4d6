"""The `sequence` family: NumPy twins with hand-written backward passes."""
