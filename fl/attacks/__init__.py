"""Byzantine clients (poisoning attacks): ``make_attack(name, scale=None)``; see
:mod:`fl.attacks.byzantine` for the attacker's threat model and each attack's source."""

from fl.attacks.byzantine import ATTACKS, ByzantineAttack, alie_z, make_attack

__all__ = ["ATTACKS", "ByzantineAttack", "alie_z", "make_attack"]
