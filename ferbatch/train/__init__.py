"""The trainer behind ``ferbatch train``, ``evaluate`` and ``tune``.

- :mod:`.args` — :class:`~.args.TrainArgs`, every training option and its one default;
- :mod:`.build` — the setup shared by train and tune (model, optimiser, schedule, class
  weights, preprocessing) and one epoch plus validation; :mod:`.schedule` — the LR schedule;
- :mod:`.engine` — ``train_one_epoch`` / ``predict_proba`` / ``evaluate``; :mod:`.transforms`
  — batch augmentation; :mod:`.metrics`, :mod:`.plots`;
- :mod:`.data` — :class:`~.data.FaceData`; :mod:`.datasets` — the dataset registry
  (``fer2013``, ``ferplus``, ``folder``);
- :mod:`.main` — a training run; :mod:`.resume` — ``last.pt`` and what a resumed run keeps;
- :mod:`.evaluate` — scoring a checkpoint; :mod:`.tune_space` / :mod:`.tune` — the search;
- :mod:`.calibrate` — the crop geometry measurement.

Nothing here is imported by inference: the preprocessing both share lives in
:mod:`ferbatch.models.preprocess`.
"""
