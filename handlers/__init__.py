"""Lambda handlers of the chat. Standard library and boto3 only: this package is zipped into the functions."""
