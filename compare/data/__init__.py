"""Offline data sets: generated deterministically, or read from a file the user gives.

Nothing is ever downloaded.
"""
