"""The layer above the stages: one plan of a run, two executors, one controller.

* :mod:`.plan` — :func:`~.plan.plan_run`: discover, look at each input once, assign ids,
  decide skip / fail / process (and whether a video is long enough to split);
* :mod:`.controller` — :func:`~.controller.execute`: the bookkeeping both executors share
  (manifest, recovery, skipped and failed rows, ``videos.parquet``, the summary);
* :mod:`.local` — the in-process executor and ``ferbatch.run``;
* :mod:`.ray_pool` — the Ray executor and its port to Ray; :mod:`.scheduler` — the
  ``ActorPool``-shaped scheduler (lost workers and nodes, retries), with typed tasks and
  results (:mod:`.tasks`), unit-testable with a fake pool; :mod:`.worker` — the actor;
  :mod:`.ray_setup` — connecting to (or starting) Ray;
* :mod:`.summary` — :class:`~.summary.RunSummary` and the exit-code rule.
"""
