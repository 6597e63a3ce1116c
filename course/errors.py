"""The one exception type the command line turns into a one-line message instead of a traceback."""


class CourseError(Exception):
    """A problem with the user's input (a file, a name, an argument) that has a one-line explanation."""
