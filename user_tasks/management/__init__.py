"""Management commands of user_tasks (layer: adapters; they call the operations)."""
