"""fl: federated learning that composes privcrypt's primitives (FedAvg, DP, robust
aggregation, federated adversarial training). Built in a later issue; nothing here yet."""
