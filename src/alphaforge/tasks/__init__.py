"""Asynchronous tasks: the row that tracks each one, the executors that run them, the worker side."""
