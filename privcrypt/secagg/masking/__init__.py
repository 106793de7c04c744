"""``masking``: dropout-tolerant secure aggregation by pairwise masks with secret-shared seeds.

The protocol of Bonawitz et al. (CCS 2017, "Practical Secure Aggregation for
Privacy-Preserving Machine Learning") on the sparse neighbour graph of SecAgg+ (Bell et
al., CCS 2020). Where each part lives:

* :mod:`.common` — stage names, wire records, the AES-CTR mask PRG.
* :mod:`.params` — the SecAgg+ choice of degree k and threshold t (derivation and failure
  probabilities in its docstring), the public neighbour graph, :class:`RoundConfig`.
* :mod:`.client` — :class:`MaskingClient`, one party's stage methods and its own checks.
* :mod:`.server` — :class:`MaskingServer`, relaying, summing and unmasking.
* :mod:`.driver` — :func:`run_round` (in-process transport) and :class:`MaskingAggregator`.

Stages (each a round trip of ``privcrypt.wire.Message`` bytes bound to the round id and the
stage): 1. ``advertise_keys``: two fresh X25519 public keys per client (signed with its
Ed25519 identity in the authenticated mode); the server drops small-order, repeated or
badly signed keys and sends each client its neighbours' keys. 2. ``share_keys``: each
client Shamir-shares its self-mask seed b and its mask secret key t-of-(k+1) among itself
and its neighbours, sealed with AES-256-GCM under pairwise X25519 keys. 3.
``masked_input``: ``y_u = q_u + PRG(b_u) ± sum PRG(s_uv) mod R``. 3b (authenticated)
``consistency_check``: each survivor signs the survivor set U3. 4. ``unmasking``: each
survivor reveals, per neighbour, the share of b (survived) or of the mask key (dropped),
never both; the server removes the masks and gets ``sum q_u mod R``.

Threat model and guarantee (semi-honest server, the default): the server follows the
protocol but chooses who drops and colludes with clients; with fewer than t corrupt share
holders per neighbourhood (probability of more: ``p_security`` of
:func:`secagg_plus_parameters`), the server learns only the sum over each connected
component of the honest survivors' graph, and every such component has at least two
honest clients: a client sends its masked input and unmasks only while at least t of its
*other* neighbours remain, so it is never masked against colluders alone. The server
aborts when the survivors' graph is disconnected. Authenticated mode
(``authenticated=True``): additionally against a *malicious* server that substitutes keys,
shows clients different survivor sets or forges U3 — detected, ``ProtocolAbort`` naming
the stage — provided ``2t > k + 1 + c`` for c corrupt holders (clients enforce a majority
threshold). Not covered: a malicious server grinding round ids to bias the graph (the
default small rounds use the complete graph), client-to-server message authenticity
beyond signatures (run over TLS), malicious clients' input values (no range proof).
"""

from privcrypt.secagg.masking.common import (ADVERTISE, AUTH_STAGES, CONSISTENCY, MASKED,
                                             PRG_BACKEND, SHARE, STAGES, UNMASK, MaskExpander,
                                             expand_mask)
from privcrypt.secagg.masking.client import MaskingClient
from privcrypt.secagg.masking.driver import MaskingAggregator, run_round
from privcrypt.secagg.masking.params import (RoundConfig, SecAggPlusParameters, default_degree,
                                             default_threshold, neighbour_graph,
                                             secagg_plus_parameters)
from privcrypt.secagg.masking.server import MaskingServer

__all__ = [
    "MaskExpander", "PRG_BACKEND", "MaskingAggregator", "MaskingClient", "MaskingServer",
    "RoundConfig", "SecAggPlusParameters", "neighbour_graph", "default_degree",
    "default_threshold", "secagg_plus_parameters", "expand_mask", "STAGES", "AUTH_STAGES",
    "ADVERTISE", "SHARE", "MASKED", "CONSISTENCY", "UNMASK", "run_round",
]
