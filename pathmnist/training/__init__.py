"""Stage 5, training a model (chapters 5 and 7).

- `loop`: `train_one_epoch`, `evaluate` (with test-time augmentation), `forward`.
- `prepare`: the checks and setup before the first epoch, the optimizer.
- `fit`: the whole run, epoch after epoch, into its run folder.
- `schedulers`: `StepLR`. `early_stopping`: `EarlyStopping`. `history`: history.csv.
- `checkpoints`: the checkpoint file format. `resume`: what each epoch saves and what a
  resume checks. `inference`: a trained run loaded for inference.
- `rundir`: a run folder's lock, refusal, resume and overwrite rules.
- `lr_finder`: the learning-rate range test.
- `ddp`: data-parallel training under torchrun, and trials shared out over processes
  (chapter 14).
"""
