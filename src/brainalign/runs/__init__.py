"""Tasks: units of work named by everything that determines their result.

The code key (a hash over the brainalign modules a task really imports), the task spec and the
content-addressed store (``<store>/<namespace>/<key>/``), and the executors that run tasks: in process,
in forked workers, or on a Ray cluster, as params.yaml's ``engine`` section says (``runs.engine``).

May import: the base modules (``errors``, ``files``, ``offline``), and ``config`` (``runs.engine`` reads the
``engine`` section).
"""
