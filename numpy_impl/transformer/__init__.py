"""The `transformer` family: NumPy twins with hand-written backward passes."""
