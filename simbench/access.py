"""The access vocabulary: what a measure needs of a system, and what a system offers.

``"accessible"``: a network simbench can run and patch (a :class:`~simbench.systems.torch.
TorchSystem`). ``"recording"``: recorded activity is enough (any system can provide it). Measures
declare one entry per system slot; systems declare the one they offer. It lives in its own
module so measures and systems can both use it without importing each other.
"""

from __future__ import annotations

from typing import Literal

Access = Literal["accessible", "recording"]
ACCESSIBLE: Access = "accessible"
RECORDING: Access = "recording"

Family = Literal["causal", "correlative"]
FAMILIES: tuple[Family, ...] = ("causal", "correlative")

__all__ = ["ACCESSIBLE", "FAMILIES", "RECORDING", "Access", "Family"]
