"""What the chat is, written once: read by the Pulumi program (`infra/`) and the local emulator (`emulator/`)."""
