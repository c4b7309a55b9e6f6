"""The one exception type Tutti raises for problems a user can fix.

`launch.py` turns a `TuttiError` into a single line on stderr and exit code 2; every message
names the file or value at fault and ends with what to do about it.
"""


class TuttiError(Exception):
    """A user-facing error: one line naming the culprit and the remedy."""
