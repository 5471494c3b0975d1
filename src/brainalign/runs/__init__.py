"""Tasks: units of work named by everything that determines their result.

The code key (a hash over the brainalign modules a task really imports), the task spec and the
content-addressed store (``<store>/<namespace>/<key>/``), and executors that run tasks (today in
process; a distributed engine is one more executor).

May import: the base modules only (``errors``, ``files``).
"""
