"""A task's states, apart from the runner: code that only reads task rows (e.g. whether a
study still has a task running) needs them without importing the runner and every task
kind behind it (an import circle through tuning)."""

PENDING, STARTED, SUCCESS, FAILURE, REVOKED = "PENDING", "STARTED", "SUCCESS", "FAILURE", "REVOKED"
FINISHED = (SUCCESS, FAILURE, REVOKED)
