"""The `evaluation` family: NumPy twins with hand-written backward passes."""
