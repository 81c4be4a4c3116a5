"""The interchange-intervention engine shared by MAS, DAS, CLMAS and both stitches.

One concern per module:

- :mod:`~simbench.interventions.patch`: the edit protocol every runnable model accepts
  (``run(tokens, edits={site: edit})``) and :class:`~simbench.interventions.patch.Patch`,
  which applies an edit.
- :mod:`~simbench.interventions.frozen`: borrowing a caller's network for a measure and
  handing it back exactly as it was.
- :mod:`~simbench.interventions.subspace`: one d x k matrix with orthonormal columns per
  system, and the low-rank interchange ``h_t + (h_s U_s - h_t U_t) U_t^T``.
- :mod:`~simbench.interventions.maps`: intervention maps (subspaces, rank-k stitches,
  orthogonal stitches, the pseudo-inverse of a stitch).
- :mod:`~simbench.interventions.data`: stimulus pools and counterfactual intervention sets
  built from each system's task (values carried across tasks by variable mapping).
- :mod:`~simbench.interventions.runners`: how a frozen network is run with a patched site,
  caching what cannot change (source latents, the target's prefix).
- :mod:`~simbench.interventions.engine`: the training loop (all directions of a step in one
  batch per target), validation, early stopping, best checkpoint, evaluation.
- :mod:`~simbench.interventions.recorded`: a recording-only system as an engine party.
- :mod:`~simbench.interventions.states`: counterfactual latents of a recording-only system,
  matched by their causal variables.
- :mod:`~simbench.interventions.cl_loss`: the counterfactual-latent loss and its fit.
- :mod:`~simbench.interventions.cl_engine`: the engine with counterfactual-latent terms
  (CLMAS, the latent stitch).
"""
