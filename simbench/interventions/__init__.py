"""The interchange-intervention engine shared by MAS, DAS, CLMAS and both stitches.

- :mod:`~simbench.interventions.subspace`: one d x k matrix with orthonormal columns per
  system, and the low-rank interchange ``h_t + (h_s U_s - h_t U_t) U_t^T``.
- :mod:`~simbench.interventions.data`: stimulus pools and counterfactual intervention sets
  built from each system's task (values carried across tasks by variable mapping).
- :mod:`~simbench.interventions.runners`: how a frozen network is run with a patched site,
  caching what cannot change (source latents, the target's prefix).
- :mod:`~simbench.interventions.engine`: the training loop (all directions of a step in one
  batch per target), validation IIA, early stopping, checkpoints, evaluation.
"""
