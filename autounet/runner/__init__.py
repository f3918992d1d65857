"""``autounet run``: one command from a raw dataset to a chosen model, within a time budget."""
