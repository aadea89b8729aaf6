"""The cloud: Pulumi components that deploy the chat described by `app.definition` with a stack's settings."""
