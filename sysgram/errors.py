"""The one exception type users see: a clear sentence that says what is wrong and the fix."""


class UserError(Exception):
    """An error the user can fix. The CLI prints the message alone (no traceback), exit 2.

    The message is one sentence that names what is wrong and how to fix it.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
