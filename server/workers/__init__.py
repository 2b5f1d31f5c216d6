"""Worker processes on one port (`shopserve serve --workers N`): the supervisor and the worker."""
