"""Errors a user can fix, shown as one line (initstudy.runner prints them)."""


class StudyError(Exception):
    """A problem the user can fix (a bad param, missing data); shown as one line."""
