"""Names of the environment variables the functions read.

The Pulumi program and the local emulator set them from `app.definition`, which imports these names, so the
strings exist once. This module is zipped with the handlers: standard library only.
"""

TABLE_NAME = "TABLE_NAME"
"""The DynamoDB table of live connections."""

ENDPOINT_URL = "ENDPOINT_URL"
"""The callback (`@connections`) API: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`."""

MAX_MESSAGE_BYTES = "MAX_MESSAGE_BYTES"
"""The largest chat message `sendmessage` accepts, in UTF-8 bytes."""

TOKEN_SECRET_PARAMETER = "TOKEN_SECRET_PARAMETER"
"""Name of the SSM SecureString parameter holding the token-signing secret (authorizer only)."""
