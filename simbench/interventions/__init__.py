"""The interchange-intervention engine shared by MAS, DAS, CLMAS and both stitches.

One concern per module: ``patch`` (the edit protocol runnable models accept),
``frozen`` (borrowing a caller's network and handing it back as it was), ``subspace``
(orthonormal U_i and the interchange ``h_t + (h_s U_s - h_t U_t) U_t^T``), ``maps``
(subspaces, rank-k, orthogonal and inverse stitches), ``data`` (stimulus pools and
counterfactual intervention sets, values carried across tasks by variable mapping),
``runners`` (patched runs that skip what cannot change), ``engine`` (training,
validation, early stopping, evaluation), ``recorded`` and ``states`` (a
recording-only system as a party, and its counterfactual latents), ``cl_loss`` and
``cl_engine`` (the counterfactual-latent loss and the engine with it: CLMAS, the latent
stitch).
"""
