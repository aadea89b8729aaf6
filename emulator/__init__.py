"""The local cloud: API Gateway (WebSocket and `@connections`), Lambda and DynamoDB on one machine.

`python -m emulator` serves the routes of `app.definition` with the real handlers, configured from the stack's
`Pulumi.<stack>.yaml`, so code that works here works deployed. See docs/emulator.md.
"""
