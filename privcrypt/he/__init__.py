"""CKKS secure aggregation on SEAL (through TenSEAL's ``sealapi``).

>>> from privcrypt.he import CkksContext, encrypt, Accumulator, decrypt
>>> key = CkksContext.generate()                      # key holder / clients
>>> server = Accumulator(key.public(), n_values=3)    # the server holds no key
>>> server.add(encrypt(key, [1.0, 2.0, 3.0]))
>>> server.add(encrypt(key, [3.0, 2.0, 1.0]))
>>> decrypt(key, server.finish()).tolist()
[2.0, 2.0, 2.0]

Parameter choice, trust model and measured costs: docs/he.md.
"""

from privcrypt.he.client import DecryptInfo, decrypt, encrypt, noise_bound
from privcrypt.he.context import CkksContext
from privcrypt.he.params import DEFAULT_PARAMS, PARAM_SETS, ParamSet, get_params
from privcrypt.he.server import Accumulator

__all__ = [
    "CkksContext",
    "ParamSet",
    "PARAM_SETS",
    "DEFAULT_PARAMS",
    "get_params",
    "encrypt",
    "decrypt",
    "noise_bound",
    "DecryptInfo",
    "Accumulator",
]
