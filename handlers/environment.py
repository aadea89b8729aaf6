"""Names of the environment variables the functions read.

The Pulumi program and the local emulator set them from `app.definition`, which imports these names, so the
strings exist once. This module is zipped with the handlers: standard library only.
"""

TABLE_NAME = "TABLE_NAME"
"""The DynamoDB table of live connections."""

ROOMS_TABLE_NAME = "ROOMS_TABLE_NAME"
"""The DynamoDB table of room members, name claims and message counters."""

HISTORY_TABLE_NAME = "HISTORY_TABLE_NAME"
"""The DynamoDB table of each room's messages."""

MAX_ROOMS = "MAX_ROOMS"
"""How many rooms one connection may be in at once."""

HISTORY_LIMIT = "HISTORY_LIMIT"
"""The most messages one history answer (or `joined`) carries."""

HISTORY_RETENTION_DAYS = "HISTORY_RETENTION_DAYS"
"""Days a message stays in the history table before TTL deletes it."""

ENDPOINT_URL = "ENDPOINT_URL"
"""The callback (`@connections`) API: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`."""

MAX_MESSAGE_BYTES = "MAX_MESSAGE_BYTES"
"""The largest chat message `sendmessage` accepts, in UTF-8 bytes."""

BROADCAST_MAX_POSTS_PER_SECOND = "BROADCAST_MAX_POSTS_PER_SECOND"
"""The most `@connections` posts per second one broadcast may make (its share of the account's quota)."""

BROADCAST_SHARD_SIZE = "BROADCAST_SHARD_SIZE"
"""Members above which one broadcast is split across parallel invocations of the function."""

PRESENCE_MAX_MEMBERS = "PRESENCE_MAX_MEMBERS"
"""The largest room whose joins and leaves are announced to its members."""

MESSAGE_RATE_PER_SECOND = "MESSAGE_RATE_PER_SECOND"
"""Messages per second one connection may send, sustained (its token bucket's refill rate)."""

MESSAGE_BURST = "MESSAGE_BURST"
"""Messages one connection may send at once after a pause (its token bucket's size)."""

TOKEN_SECRET_PARAMETER = "TOKEN_SECRET_PARAMETER"
"""Name of the SSM SecureString holding the HS256 secret (authorizer, shared-secret mode only)."""

JWT_ISSUER = "JWT_ISSUER"
"""The OIDC issuer whose tokens the authorizer accepts (`iss`); unset in shared-secret mode."""

JWT_AUDIENCE = "JWT_AUDIENCE"
"""The audience tokens must name (`aud`); required with an issuer, optional with a shared secret."""

JWKS_URL = "JWKS_URL"
"""The issuer's key set; unset means OIDC discovery at `{issuer}/.well-known/openid-configuration`."""

JWT_NAME_CLAIM = "JWT_NAME_CLAIM"
"""The claim holding the display name; unset means `name`, then `preferred_username`, then `email`."""
