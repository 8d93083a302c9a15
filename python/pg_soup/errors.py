"""Exceptions of pg_soup: every error carries a PostgreSQL SQLSTATE.

Errors the server raises keep its SQLSTATE, message, detail and hint; errors
this package finds before talking to the server use the SQLSTATE the server
would have used for the same mistake, so code can branch on ``e.sqlstate``
whichever side noticed.
"""

# SQLSTATEs used on the Python side (PostgreSQL's names in comments).
INVALID_PARAMETER_VALUE = "22023"   # invalid_parameter_value
DATATYPE_MISMATCH = "42804"         # datatype_mismatch
UNDEFINED_OBJECT = "42704"          # undefined_object
DUPLICATE_OBJECT = "42710"          # duplicate_object
DATA_CORRUPTED = "XX001"            # data_corrupted
INVALID_FILE = "22P04"              # bad_copy_file_format: a malformed file
PROGRAM_LIMIT_EXCEEDED = "54000"    # program_limit_exceeded
IO_ERROR = "58030"                  # io_error


class SoupError(Exception):
    """An error of pg_soup or of the server, with its SQLSTATE."""

    def __init__(self, message, sqlstate, detail=None, hint=None):
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint

    def __str__(self):
        text = "%s (SQLSTATE %s)" % (self.message, self.sqlstate)
        if self.detail:
            text += "\nDETAIL: " + self.detail
        if self.hint:
            text += "\nHINT: " + self.hint
        return text

    @classmethod
    def from_psycopg2(cls, err):
        diag = getattr(err, "diag", None)
        message = (diag.message_primary if diag is not None and diag.message_primary
                   else str(err).strip())
        return cls(message, err.pgcode or IO_ERROR,
                   detail=diag.message_detail if diag is not None else None,
                   hint=diag.message_hint if diag is not None else None)
