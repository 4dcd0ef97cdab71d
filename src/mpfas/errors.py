"""One base class for errors a user can fix (bad params, bad data); stages print them
as one line and exit non-zero, while anything else keeps its traceback."""


class MpfasError(Exception):
    """An error in the user's inputs, with a message that names what to fix."""
