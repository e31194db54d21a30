"""Errors a user can cause or fix, shared by the stages (importable without torch)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""
